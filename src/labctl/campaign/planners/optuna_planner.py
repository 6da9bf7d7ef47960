"""The default planner: Optuna's TPE (one objective) or NSGA-II (several), ask/tell, no torch.

Stateless between calls: every `suggest` builds a new in-memory study, adds each observed cell as a finished
trial (its values, the objectives' values) and each pending cell as a running one (TPE's constant liar keeps
a batch from piling onto one point), then asks for n. The sampler's seed is derived from the campaign's seed
and how many cells came before, so a resumed campaign suggests what an uninterrupted one would have.

With TPE the first `startup` cells are a scrambled Sobol design (space-filling, on log axes in log), not
random draws. With one objective, life, a share `exploit` of the cells is then put where the life surrogate
(a censored Weibull AFT fit over the factors, `censoring.py`) has its longest median, at points apart from
the batch's others; TPE places the rest, seeing those as pending. `recommend` is the tried condition whose
fitted log median, less one standard error, is largest. On the simulated world (`bench_planner.py`) the
surrogate on log axes is what lets the recommendation find the ridge of long lives (RESULTS.md).

Censoring (`options.censoring`): `weibull` (default) fits the surrogate with censored lives as what they
are and gives TPE a censored life's conditional median past its censoring time; `naive` reads a censored
cell as failed at that time, in the surrogate and for TPE alike (the baseline the test and benchmark compare
against: everything else is the same).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from labctl.campaign.planners import censoring
from labctl.campaign.planners.base import Observation, Planner, PlannerError


class OptunaPlanner(Planner):
    name: ClassVar[str] = "optuna"
    # the recommendation's lower bound: fitted log median minus this many standard errors, so a tried
    # condition the surface knows well beats one at its fringe whose fitted median is an extrapolation
    RECOMMEND_Z: ClassVar[float] = 1.0
    OPTIONS: ClassVar[dict[str, str]] = {
        "sampler": "tpe or nsga2 (default: tpe for one objective, nsga2 for several)",
        "startup": "space-filling (Sobol) trials before the models take over (default 4)",
        "censoring": "weibull (a censored life is imputed from a censored Weibull fit) or naive",
        "exploit": "share of each batch put at the life surrogate's best (0 to 1, default 0.34)",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            import optuna  # noqa: F401
        except ImportError as exc:
            raise PlannerError("planner `optuna` needs the optuna package (pip install optuna)") from exc
        multi = len(self.objectives) > 1
        self.sampler = str(self.options.get("sampler", "nsga2" if multi else "tpe"))
        self.censoring = str(self.options.get("censoring", "weibull"))
        self.startup = self.options.get("startup", 4)
        self.exploit = self.options.get("exploit", 0.34)
        if self.sampler not in ("tpe", "nsga2"):
            raise PlannerError(f"planner `optuna`: option sampler must be tpe or nsga2, got {self.sampler!r}")
        if self.censoring not in ("weibull", "naive"):
            raise PlannerError(f"planner `optuna`: option censoring must be weibull or naive, got "
                               f"{self.censoring!r}")
        if isinstance(self.startup, bool) or not isinstance(self.startup, int) or self.startup < 1:
            raise PlannerError(f"planner `optuna`: option startup must be a whole number >= 1, got "
                               f"{self.startup!r}")
        if isinstance(self.exploit, bool) or not isinstance(self.exploit, int | float) \
                or not 0.0 <= self.exploit <= 1.0:
            raise PlannerError(f"planner `optuna`: option exploit must be a number from 0 to 1, got "
                               f"{self.exploit!r}")

    def _distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for a in self.space.axes:
            if not a.continuous:
                out[a.name] = CategoricalDistribution(list(a.choices))
            elif a.integer:
                out[a.name] = IntDistribution(round(a.low or 0), round(a.high or 0), log=a.logscale)
            else:
                out[a.name] = FloatDistribution(float(a.low or 0.0), float(a.high or 0.0), log=a.logscale)
        return out

    def _params(self, values: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in self.space.axes:
            v = values[a.name]
            if not a.continuous:
                out[a.name] = str(v)
                continue
            assert a.low is not None and a.high is not None
            x = min(max(a.number(v), a.low), a.high)
            out[a.name] = round(x) if a.integer else x
        return out

    def objective_values(self, observations: list[Observation]) -> list[list[float] | None]:
        """Each cell's objective values as the study sees them (None: a metric is missing)."""
        hours = (censoring.imputed_hours(self.space, observations) if self.censoring == "weibull"
                 else [o.hours for o in observations])
        out: list[list[float] | None] = []
        for o, h in zip(observations, hours, strict=True):
            vals = [h if ob.metric == "hours_to_failure" else o.metric(ob.metric) for ob in self.objectives]
            out.append(None if any(v is None for v in vals) else [float(v) for v in vals if v is not None])
        return out

    def _study(self, observations: list[Observation], pending: list[dict[str, str]]) -> Any:
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = int(np.random.SeedSequence([self.seed, len(observations), len(pending)]).generate_state(1)[0])
        with warnings.catch_warnings():  # constant_liar / multivariate are marked experimental
            warnings.simplefilter("ignore")
            if self.sampler == "tpe":
                sampler: Any = optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(self.startup),
                                                          multivariate=True, constant_liar=True)
            else:
                sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, int(self.startup)))
        study = optuna.create_study(sampler=sampler, directions=[
            "maximize" if o.sense == "maximise" else "minimize" for o in self.objectives])
        dists = self._distributions()
        for o, vals in zip(observations, self.objective_values(observations), strict=True):
            state = TrialState.COMPLETE if vals is not None else TrialState.FAIL
            study.add_trial(create_trial(params=self._params(o.values), distributions=dists, values=vals,
                                         state=state))
        for p in pending:
            study.add_trial(create_trial(params=self._params(p), distributions=dists,
                                         state=TrialState.RUNNING))
        return study

    def _sobol(self, first: int, n: int) -> list[dict[str, str]]:
        """Points first .. first+n-1 of the campaign's scrambled Sobol sequence over every factor (a
        discrete factor's coordinate picks its choice), so a resumed campaign draws the same ones."""
        from scipy.stats import qmc

        with warnings.catch_warnings():  # Sobol prefers powers of two; any prefix is still space-filling
            warnings.simplefilter("ignore")
            u = qmc.Sobol(len(self.space.axes), scramble=True, seed=self.seed).random(first + n)[first:]
        out = []
        for row in u:
            p = {}
            for a, x in zip(self.space.axes, row, strict=True):
                p[a.name] = (a.text(float(a.from_unit(x))) if a.continuous
                             else a.choices[min(int(x * len(a.choices)), len(a.choices) - 1)])
            out.append(p)
        return out

    def _life_model(self, observations: list[Observation]) -> Any:
        """The life surrogate, or None when life is not the one objective or too few cells have a life."""
        o = self.objectives[0]
        used = censoring.lives(observations)
        if len(self.objectives) > 1 or o.metric != "hours_to_failure" or len(used) < self.startup:
            return None
        return censoring.fit(self.space, used, naive=self.censoring == "naive")

    def suggest(self, n: int, observations: list[Observation], pending: list[dict[str, str]]
                ) -> list[dict[str, str]]:
        k = len(observations) + len(pending)
        out = self._sobol(k, min(n, max(0, int(self.startup) - k))) if self.sampler == "tpe" else []
        model = self._life_model(observations) if len(out) < n else None
        if model is not None:
            share = float(self.exploit)
            m = min(n - len(out), int((k + n) * share) - int(k * share))
            rng = np.random.default_rng([self.seed, k])
            sign = 1.0 if self.objectives[0].sense == "maximise" else -1.0
            out += censoring.best_points(self.space, model, m, rng, avoid=pending + out, sign=sign)
        if len(out) == n:
            return out
        study = self._study(observations, pending + out)
        dists = self._distributions()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while len(out) < n:
                t = study.ask(dists)  # left running: the next ask sees it as pending
                out.append({a.name: (str(t.params[a.name]) if not a.continuous else a.text(t.params[a.name]))
                            for a in self.space.axes})
        return out

    def recommend(self, observations: list[Observation]) -> dict[str, str] | None:
        """The tried condition whose fitted median life (the life surrogate) is longest, so one lucky cell
        does not outrank a condition the fit says is better; the best value seen when life is not the first
        objective."""
        o = self.objectives[0]
        used = censoring.lives(observations)
        if o.metric != "hours_to_failure" or not used:
            return super().recommend(observations)
        model = censoring.fit(self.space, used, naive=self.censoring == "naive")
        x = censoring.features(self.space, [ob.values for ob in used])
        sign = 1.0 if o.sense == "maximise" else -1.0
        score = sign * np.log(model.median(x)) - self.RECOMMEND_Z * model.log_median_sd(x)
        return dict(used[int(np.argmax(score))].values)

    def describe(self) -> dict[str, Any]:
        import optuna

        return {**super().describe(), "sampler": self.sampler, "censoring": self.censoring,
                "startup": self.startup, "exploit": self.exploit, "optuna": optuna.__version__}
