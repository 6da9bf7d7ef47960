"""MethodSCRIPT, the language, for the simulated EmStat4: a script's lines parsed into statements, checked
before any of it runs.

Grammar as PalmSens' example scripts and the MethodSCRIPT manual (v1.6/1.8) write it: one command per line,
`#` starts a comment (outside a quoted string), indentation is free; `var` declares a variable, `store_var`
gives it a value and a 2-letter type id, numbers are literals with an SI prefix (`100m`, `36i` integers) or
variables, and `array a 10i` declares an array whose elements `a[k]` stand wherever a variable may; blocks
are `meas_loop_<technique> <vars> <parameters> [options] ... endloop`, `loop <a> <op> <b> ... endloop`,
`if <a> <op> <b> ... [elseif ...] [else ...] endif`; `breakloop` leaves the innermost loop; `on_finished:`
starts the commands run when the script ends or is aborted.

The static checks (a failing script answers `!XXXX: Line N` and nothing of it runs). The codes are the
device's, as PalmSens' own SDK names them (pypalmsens 2.2, `_instruments/comm_registry.py`,
COMM_PROTOCOL_EXCEPTIONS); which check gives which code where several could is this simulator's choice
[verify on hardware]: an unknown script command 0x4001; a malformed number, or a name that is no declared
variable with a value where a number belongs, 0x4004 (an unexpected character); a wrong argument count or
value 0x0007; a bad type id 0x0002 (invalid VarType); an option the command does not take 0x4008; a
measurement loop inside another 0x400B; `endloop`/`endif`/`else` with no block to end 0x400E; the script
ending inside a block 0x4018; a command not allowed where it is (a loop after `on_finished:`) 0x400C; a
package command out of sequence 0x401B; a variable declared twice 0x4026, a bad variable name 0x402B; a
pgstat mode the EmStat4 lacks 0x0021; a technique in the wrong pgstat mode 0x0023 (galvanostatic techniques
need mode 6, the others must not have it). Values (a loop's parameters) are checked when the loop runs, as
variables may change at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from labctl.drivers.methodscript import parse_literal

# the device's error codes (PalmSens SDK COMM_PROTOCOL_EXCEPTIONS)
E_UNSPECIFIED = 0x0001  # "An unspecified error has occurred"
E_VARTYPE = 0x0002  # "An invalid VarType has been used"
E_NOT_RECOGNIZED = 0x0003  # "The command was not recognized" (idle commands)
E_COMM_MODE = 0x0006  # "Communication mode invalid" (`Z` with nothing running)
E_VALUE = 0x0007  # "An argument has an unexpected value"
E_FREQUENCY = 0x0011  # "The input frequency is invalid"
E_AMPLITUDE = 0x0012  # "The input amplitude is invalid"
E_OCP_CELL_ON = 0x0014  # "Cannot perform OCP measurement when cell on"
E_PGSTAT_MODE = 0x0021  # "The specified PGStat mode is not supported"
E_WRONG_MODE = 0x0023  # "Command is invalid for the selected PGStat mode"
E_DIVIDE_BY_ZERO = 0x0028  # "Variable divided by zero"
E_MEMORY = 0x000B  # "Cannot reserve the memory needed for this var"
E_INDEX = 0x400F  # "Array index out of bounds"
E_UNKNOWN = 0x4001  # "The script command is unknown"
E_CHARACTER = 0x4004  # "An unexpected character was encountered"
E_OPTION = 0x4008  # "This optional argument is not valid for this command"
E_NESTED = 0x400B  # "Measurement loops cannot be placed inside other measurement loops"
E_SITUATION = 0x400C  # "Command not supported in current situation"
E_SCOPE = 0x400E  # "The command had an invalid effect on scope depth"
E_ENDED = 0x4018  # "The script has ended unexpectedly."
E_PACKET = 0x401B  # "the packet sequence is called wrong"
E_REDECLARED = 0x4026  # "The variable already exists when declared"
E_VARNAME = 0x402B  # "The variable name did not start with a-z or ... contained anything other than ..."
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ELEMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[([^\[\]]+)\]")  # an array element, `capacity[cycle]`
TYPE_ID = re.compile(r"[a-z]{2}")
OPTION = re.compile(r"([a-z_]+)\(([^()]*)\)")
OPERATORS = ("<", "<=", ">", ">=", "==", "!=")
TIMER_TYPE = "eb"

#: simple commands: (fewest, most) arguments
SIMPLE: dict[str, tuple[int, int]] = {
    "set_pgstat_chan": (1, 1),
    "set_pgstat_mode": (1, 1),
    "set_max_bandwidth": (1, 1),
    "set_range": (2, 2),
    "set_range_minmax": (3, 3),
    "set_autoranging": (3, 3),
    "set_e": (1, 1),
    "set_i": (1, 1),
    "cell_on": (0, 0),
    "cell_off": (0, 0),
    "wait": (1, 1),
    "pck_start": (0, 0),
    "pck_end": (0, 0),
    "pck_add": (1, 1),
    "store_var": (3, 3),
    "copy_var": (2, 2),
    "add_var": (2, 2),
    "sub_var": (2, 2),
    "mul_var": (2, 2),
    "div_var": (2, 2),
    "timer_start": (0, 0),
    "timer_get": (1, 1),
    "send_string": (1, 1),
    "breakloop": (0, 0),
    "array": (2, 2),
    "meas": (3, 3),
    "alter_vartype": (2, 2),
    "set_script_output": (1, 1),
    "set_acquisition_frac_autoadjust": (1, 1),
    "set_acquisition_frac": (1, 1),
    "set_cr": (1, 1),
    "set_pot_range": (2, 2),
    "mod_var": (2, 2),
    "pow_var": (2, 2),
    "bit_and_var": (2, 2),
    "bit_or_var": (2, 2),
    "bit_xor_var": (2, 2),
    "bit_lsl_var": (2, 2),
    "bit_lsr_var": (2, 2),
    "bit_inv_var": (1, 1),
    "int_to_float": (1, 1),
    "float_to_int": (1, 1),
    "abort": (0, 0),
}
#: arithmetic on a variable: `<op> a b` sets a = a op b (`bit_inv_var`, `int_to_float`, `float_to_int`: a)
ARITHMETIC = ("add_var", "sub_var", "mul_var", "div_var", "mod_var", "pow_var", "bit_and_var", "bit_or_var",
              "bit_xor_var", "bit_lsl_var", "bit_lsr_var", "bit_inv_var", "int_to_float", "float_to_int")
#: commands whose first argument is a type id, not a number
TYPED_FIRST = ("set_range", "set_range_minmax", "set_autoranging")


@dataclass(frozen=True)
class Technique:
    """A measurement loop: its output variables' type ids, how many parameters, the options it takes."""

    types: tuple[str, ...]
    n_params: int
    galvanostatic: bool = False
    options: tuple[str, ...] = ()


TECHNIQUES = {
    "meas_loop_eis": Technique(("dc", "cc", "cd"), 5),  # amplitude, f_start, f_end, points, dc potential
    "meas_loop_geis": Technique(("dc", "cc", "cd"), 5, galvanostatic=True),  # ... dc current
    "meas_loop_ocp": Technique(("ab",), 2),  # interval, run time
    "meas_loop_cp": Technique(("ab", "ba"), 3, galvanostatic=True),  # current, interval, run time
    "meas_loop_ca": Technique(("da", "ba"), 3),  # potential, interval, run time
    "meas_loop_lsv": Technique(("da", "ba"), 4),  # begin, end, step, scan rate
    "meas_loop_cv": Technique(("da", "ba"), 5, options=("nscans",)),  # begin, vertex 1, vertex 2, step, rate
    "meas_loop_dpv": Technique(("da", "ba"), 6),  # begin, end, step, pulse, pulse time, scan rate
    "meas_loop_swv": Technique(("da", "ba", "ba", "ba"), 5),  # begin, end, step, amplitude, frequency
    "meas_loop_lsp": Technique(("ab", "db"), 4, galvanostatic=True),  # begin, end, step (A), rate (A/s)
}


class ScriptError(Exception):
    def __init__(self, code: int, line: int) -> None:
        super().__init__(f"!{code:04X}: Line {line}")
        self.code, self.line = code, line


@dataclass
class Stmt:
    line: int
    cmd: str
    args: list[str]


@dataclass
class MeasLoop:
    line: int
    kind: str
    out: list[str]
    params: list[str]
    options: dict[str, str]
    body: list = field(default_factory=list)


@dataclass
class Loop:
    line: int
    cond: tuple[str, str, str]
    body: list = field(default_factory=list)


@dataclass
class If:
    line: int
    branches: list[tuple[tuple[str, str, str] | None, list]] = field(default_factory=list)


def tokenize(raw: str) -> list[str]:
    """Words of a line; a "..." string (f"..." too) is one word; `#` outside a string ends the line."""
    words: list[str] = []
    cur = ""
    quote = False
    for ch in raw:
        if quote:
            cur += ch
            quote = ch != '"'
        elif ch == '"':
            cur += ch
            quote = True
        elif ch == "#":
            break
        elif ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    return words


@dataclass
class Program:
    body: list
    finish: list[Stmt]


class _Checker:
    """The static pass: declarations, definitions (in program order), structure and pgstat mode."""

    def __init__(self, mode: int) -> None:
        self.declared: set[str] = set()
        self.defined: set[str] = set()
        self.arrays: set[str] = set()
        self.mode = mode

    def var(self, name: str, n: int, *, defined: bool = True) -> None:
        """A variable, or an array element `a[i]` (an array's elements always have a value)."""
        if m := ELEMENT.fullmatch(name):
            if m.group(1) not in self.arrays:
                raise ScriptError(E_CHARACTER, n)
            self.number(m.group(2), n)
            return
        if name not in self.declared or name in self.arrays or (defined and name not in self.defined):
            raise ScriptError(E_CHARACTER, n)

    def number(self, text: str, n: int) -> None:
        if IDENT.fullmatch(text) or ELEMENT.fullmatch(text):
            self.var(text, n)
            return
        try:
            parse_literal(text)
        except ValueError:
            raise ScriptError(E_CHARACTER, n) from None

    def cond(self, words: list[str], n: int) -> tuple[str, str, str]:
        if len(words) != 3 or words[1] not in OPERATORS:
            raise ScriptError(E_VALUE, n)
        self.number(words[0], n)
        self.number(words[2], n)
        return words[0], words[1], words[2]


def parse(lines: list[str], mode: int) -> Program:
    """The whole script checked; `mode` is the pgstat mode the device is in when it starts."""
    check = _Checker(mode)
    root: list = []
    finish: list[Stmt] = []
    stack: list[tuple[object, list]] = []  # open blocks and the body being filled
    body = root
    in_finish = False
    in_package = False
    for n, raw in enumerate(lines, start=1):
        words = tokenize(raw)
        if not words:
            continue
        cmd, args = words[0], words[1:]
        if cmd == "on_finished:" and not args and not stack:
            in_finish = True
            continue
        if cmd == "var":
            if len(args) != 1:
                raise ScriptError(E_VALUE, n)
            if not re.fullmatch(r"[a-z][a-z0-9_]*", args[0]):
                raise ScriptError(E_VARNAME, n)
            if args[0] in check.declared:
                raise ScriptError(E_REDECLARED, n)
            check.declared.add(args[0])
            continue
        if in_finish and (cmd in TECHNIQUES or cmd in ("loop", "if")):
            raise ScriptError(E_SITUATION, n)
        if cmd in TECHNIQUES:
            tech = TECHNIQUES[cmd]
            if any(isinstance(b, MeasLoop) for b, _ in stack):
                raise ScriptError(E_NESTED, n)
            options = {}
            while args and (m := OPTION.fullmatch(args[-1])):
                if m.group(1) not in tech.options or m.group(1) in options:
                    raise ScriptError(E_OPTION, n)
                options[m.group(1)] = m.group(2)
                args = args[:-1]
            n_vars = len(tech.types)
            if len(args) != n_vars + tech.n_params:
                raise ScriptError(E_VALUE, n)
            for name in args[:n_vars]:
                check.var(name, n, defined=False)
            for p in args[n_vars:] + list(options.values()):
                check.number(p, n)
            if tech.galvanostatic != (check.mode == 6):
                raise ScriptError(E_WRONG_MODE, n)
            check.defined.update(args[:n_vars])
            block: object = MeasLoop(n, cmd, args[:n_vars], args[n_vars:], options)
            body.append(block)
            stack.append((block, body))
            body = block.body  # type: ignore[attr-defined]
            continue
        if cmd == "loop":
            block = Loop(n, check.cond(args, n))
            body.append(block)
            stack.append((block, body))
            body = block.body
            continue
        if cmd == "if":
            block = If(n, [(check.cond(args, n), [])])
            body.append(block)
            stack.append((block, body))
            body = block.branches[0][1]
            continue
        if cmd in ("elseif", "else", "endif"):
            if not stack or not isinstance(stack[-1][0], If):
                raise ScriptError(E_SCOPE, n)
            block = stack[-1][0]
            if cmd == "endif":
                if args:
                    raise ScriptError(E_VALUE, n)
                _, body = stack.pop()
                continue
            if block.branches[-1][0] is None:  # type: ignore[attr-defined]
                raise ScriptError(E_SCOPE, n)  # nothing may follow `else`
            cond = check.cond(args, n) if cmd == "elseif" else None
            if cmd == "else" and args:
                raise ScriptError(E_VALUE, n)
            block.branches.append((cond, []))  # type: ignore[attr-defined]
            body = block.branches[-1][1]  # type: ignore[attr-defined]
            continue
        if cmd == "endloop":
            if args:
                raise ScriptError(E_VALUE, n)
            if in_package:
                raise ScriptError(E_PACKET, n)
            if not stack or isinstance(stack[-1][0], If):
                raise ScriptError(E_SCOPE, n)
            _, body = stack.pop()
            continue
        if cmd not in SIMPLE:
            raise ScriptError(E_UNKNOWN, n)
        low, high = SIMPLE[cmd]
        if cmd == "cell_on" and len(args) == 1 and (m := OPTION.fullmatch(args[0])):
            if m.group(1) != "ocp":  # `cell_on ocp(var)`: on at the potential measured into var
                raise ScriptError(E_OPTION, n)
            check.var(m.group(2), n)
            args = []
        if not low <= len(args) <= high:
            raise ScriptError(E_VALUE, n)
        in_meas = any(isinstance(b, MeasLoop) for b, _ in stack)
        if cmd == "pck_start":
            if in_package:
                raise ScriptError(E_PACKET, n)
            in_package = True
        elif cmd == "pck_end":
            if not in_package:
                raise ScriptError(E_PACKET, n)
            in_package = False
        elif cmd == "pck_add":
            if not (in_package or in_meas):
                raise ScriptError(E_PACKET, n)
            check.var(args[0], n)
        elif cmd == "breakloop":
            if not any(isinstance(b, (MeasLoop, Loop)) for b, _ in stack):
                raise ScriptError(E_SITUATION, n)
        elif cmd == "store_var":
            name, value, type_id = args
            check.var(name, n, defined=False)
            if not TYPE_ID.fullmatch(type_id):
                raise ScriptError(E_VARTYPE, n)
            check.number(value, n)
            check.defined.add(name)
        elif cmd == "array":
            name, size = args
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ScriptError(E_VARNAME, n)
            if name in check.declared:
                raise ScriptError(E_REDECLARED, n)
            check.number(size, n)
            check.declared.add(name)
            check.arrays.add(name)
        elif cmd == "meas":
            check.number(args[0], n)
            check.var(args[1], n, defined=False)
            if not TYPE_ID.fullmatch(args[2]):
                raise ScriptError(E_VARTYPE, n)
            check.defined.add(args[1])
        elif cmd == "alter_vartype":
            check.var(args[0], n)
            if not TYPE_ID.fullmatch(args[1]):
                raise ScriptError(E_VARTYPE, n)
        elif cmd == "copy_var":
            check.var(args[0], n)
            check.var(args[1], n, defined=False)
            check.defined.add(args[1])
        elif cmd in ARITHMETIC:
            check.var(args[0], n)
            for a in args[1:]:
                check.number(a, n)
        elif cmd == "timer_get":
            check.var(args[0], n, defined=False)
            check.defined.add(args[0])
        elif cmd == "send_string":
            text = args[0].removeprefix("f")
            if not (len(text) >= 2 and text[0] == '"' and text[-1] == '"'):
                raise ScriptError(E_CHARACTER, n)
            if args[0].startswith("f"):
                for name in re.findall(r"\{([^{}]*)\}", text):
                    check.var(name, n)  # arrays (`x[i]`) are not simulated: an undeclared name
        else:
            for a in args[1:] if cmd in TYPED_FIRST else args:
                check.number(a, n)
            if cmd in TYPED_FIRST and not TYPE_ID.fullmatch(args[0]):
                raise ScriptError(E_VARTYPE, n)
            if cmd == "set_pgstat_mode":
                try:
                    check.mode = int(parse_literal(args[0]))
                except ValueError:
                    raise ScriptError(E_CHARACTER, n) from None
                if check.mode not in (0, 2, 3, 4, 6):
                    raise ScriptError(E_PGSTAT_MODE, n)
        if in_finish and cmd not in ("pck_start", "pck_end", "pck_add", "send_string", "breakloop"):
            finish.append(Stmt(n, cmd, args))
        elif in_finish:
            raise ScriptError(E_SITUATION, n)
        else:
            body.append(Stmt(n, cmd, args))
    if stack or in_package:
        raise ScriptError(E_ENDED, len(lines))
    return Program(root, finish)
