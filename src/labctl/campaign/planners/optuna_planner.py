"""The default planner: Optuna's TPE (one objective) or NSGA-II (several), ask/tell, no torch.

Stateless between calls: every `suggest` builds a new in-memory study, adds each observed cell as a finished
trial (its values, the objectives' values) and each pending cell as a running one (TPE's constant liar keeps
a batch from piling onto one point), then asks for n. The sampler's seed is derived from the campaign's seed
and how many cells came before, so a resumed campaign suggests what an uninterrupted one would have.

Censoring (`options.censoring`): `weibull` (default) gives a censored life its conditional median past the
censoring time from a censored Weibull fit over the factors (`censoring.py`); `naive` takes it as a failure
at that time (the baseline the test and benchmark compare against).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from labctl.campaign.planners import censoring
from labctl.campaign.planners.base import Observation, Planner, PlannerError


class OptunaPlanner(Planner):
    name: ClassVar[str] = "optuna"
    OPTIONS: ClassVar[dict[str, str]] = {
        "sampler": "tpe or nsga2 (default: tpe for one objective, nsga2 for several)",
        "startup": "random trials before the model takes over (default 6)",
        "censoring": "weibull (a censored life is imputed from a censored Weibull fit) or naive",
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
        self.startup = self.options.get("startup", 6)
        if self.sampler not in ("tpe", "nsga2"):
            raise PlannerError(f"planner `optuna`: option sampler must be tpe or nsga2, got {self.sampler!r}")
        if self.censoring not in ("weibull", "naive"):
            raise PlannerError(f"planner `optuna`: option censoring must be weibull or naive, got "
                               f"{self.censoring!r}")
        if isinstance(self.startup, bool) or not isinstance(self.startup, int) or self.startup < 1:
            raise PlannerError(f"planner `optuna`: option startup must be a whole number >= 1, got "
                               f"{self.startup!r}")

    def _distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for a in self.space.axes:
            if not a.continuous:
                out[a.name] = CategoricalDistribution(list(a.choices))
            elif a.integer:
                out[a.name] = IntDistribution(round(a.low or 0), round(a.high or 0))
            else:
                out[a.name] = FloatDistribution(float(a.low or 0.0), float(a.high or 0.0))
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

    def suggest(self, n: int, observations: list[Observation], pending: list[dict[str, str]]
                ) -> list[dict[str, str]]:
        study = self._study(observations, pending)
        dists = self._distributions()
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(n):
                t = study.ask(dists)  # left running: the next ask sees it as pending
                out.append({a.name: (str(t.params[a.name]) if not a.continuous else a.text(t.params[a.name]))
                            for a in self.space.axes})
        return out

    def recommend(self, observations: list[Observation]) -> dict[str, str] | None:
        """The best condition tried so far by the first objective. For life with `censoring: weibull`, the
        condition whose fitted median life (the censored Weibull fit over the factors) is longest, so one
        lucky cell does not outrank a condition the fit says is better; otherwise the best value seen."""
        o = self.objectives[0]
        lives = [ob for ob in observations if ob.hours is not None and ob.status in ("failed", "censored")]
        if self.censoring == "naive" or o.metric != "hours_to_failure" or not lives:
            return super().recommend(observations)
        model = censoring.fit(self.space, lives)
        med = model.median(censoring.features(self.space, [ob.values for ob in lives]))
        k = int(np.argmax(med) if o.sense == "maximise" else np.argmin(med))
        return dict(lives[k].values)

    def describe(self) -> dict[str, Any]:
        import optuna

        return {**super().describe(), "sampler": self.sampler, "censoring": self.censoring,
                "startup": self.startup, "optuna": optuna.__version__}
