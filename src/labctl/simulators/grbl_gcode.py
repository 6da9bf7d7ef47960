"""GRBL 1.1h's line handling and G-code block parser, without the machine (the `GrblSim` executes blocks).

`clean_line` is `protocol.c`'s character filter: whitespace and control characters are dropped, `(...)`
and `;...` comments are dropped *before* the line-buffer check (so a short command with a long comment
fits), lower case is raised, `/` (block delete) is ignored, and more than LINE_BUFFER_SIZE - 1 = 79 kept
characters is an overflow (error 11).

`parse_block` follows `gcode.c`'s `gc_execute_line` checks in its order: word syntax (1, 2), unsupported words
and commands (20), modal-group violations (21), repeated words (25), negative values (4), the value checks
(22 feed, 26 axis words, 28 P/L, 29 WCS, 30 G53, 31 unused axis words, 36 unused value words). Arcs (G2/G3)
and probing (G38.x) are parsed and refused with error 20: the dip coater's controller has neither a use for
arcs nor a probe pin; docs/instruments/grbl.md says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LINE_MAX = 80                 # LINE_BUFFER_SIZE; one byte is the terminator
AXES = "XYZ"

# G-code modal groups (gcode.h): the value is the group, words of one group are exclusive in a block
G_GROUPS: dict[float, str] = {
    4: "nonmodal", 10: "nonmodal", 28: "nonmodal", 28.1: "nonmodal", 30: "nonmodal", 30.1: "nonmodal",
    53: "nonmodal", 92: "nonmodal", 92.1: "nonmodal",
    0: "motion", 1: "motion", 2: "motion", 3: "motion", 38.2: "motion", 38.3: "motion", 38.4: "motion",
    38.5: "motion", 80: "motion",
    17: "plane", 18: "plane", 19: "plane",
    90: "distance", 91: "distance", 91.1: "arc_distance",
    93: "feed_mode", 94: "feed_mode",
    20: "units", 21: "units",
    40: "cutter",
    43.1: "tlo", 49: "tlo",
    54: "coord", 55: "coord", 56: "coord", 57: "coord", 58: "coord", 59: "coord",
    61: "control",
}
M_GROUPS: dict[int, str] = {0: "program", 1: "program", 2: "program", 30: "program",
                            3: "spindle", 4: "spindle", 5: "spindle",
                            7: "coolant", 8: "coolant", 9: "coolant"}
#: commands GRBL 1.1h knows but this simulated controller refuses (error 20), and why
REFUSED = {2: "arc", 3: "arc", 38.2: "probe", 38.3: "probe", 38.4: "probe", 38.5: "probe"}
VALUE_WORDS = "FIJKLNPRST"
AXIS_USERS = {10, 28, 30, 92}          # non-modal commands that take axis words


class GcodeError(Exception):
    """A GRBL error code for a block."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def clean_line(raw: bytes) -> bytes:
    """The line GRBL keeps from `raw` (terminator excluded); GcodeError(11) when it overflows."""
    kept = bytearray()
    paren = semicolon = overflow = False
    for c in raw:
        if paren:
            paren = c != 0x29                   # ')' ends a '(' comment
            continue
        if semicolon:
            continue
        if c <= 0x20 or c == 0x2F:              # whitespace, control characters, '/' block delete
            continue
        if c == 0x28:
            paren = True
        elif c == 0x3B:
            semicolon = True
        elif len(kept) >= LINE_MAX - 1:
            overflow = True
        else:
            kept.append(c - 32 if 0x61 <= c <= 0x7A else c)
    if overflow:
        raise GcodeError(11)
    return bytes(kept)


def takes_axis_words(block: Block) -> bool:
    """The block's axis words belong to a command (G10, G28, G30, G92, G43.1), not to a motion."""
    return block.nonmodal in AXIS_USERS or block.modal.get("tlo") == 43.1


@dataclass
class Block:
    """One parsed, checked G-code block: the modal words it sets and its value and axis words (mm, s)."""

    modal: dict[str, float] = field(default_factory=dict)   # group -> G value; "program"/"spindle"/... -> M
    words: dict[str, float] = field(default_factory=dict)
    axes: dict[str, float] = field(default_factory=dict)    # as written (units not applied)

    @property
    def nonmodal(self) -> float | None:
        return self.modal.get("nonmodal")


def _words(line: str) -> list[tuple[str, float, str]]:
    out = []
    i = 0
    while i < len(line):
        letter = line[i]
        if not "A" <= letter <= "Z":
            raise GcodeError(1)                  # expected command letter
        m = re.match(r"[+-]?(\d+\.?\d*|\.\d+)", line[i + 1:])
        if m is None:
            raise GcodeError(2)                  # bad number format
        out.append((letter, float(m.group(0)), m.group(0)))
        i += 1 + m.end()
    return out


def parse_block(line: str, *, motion: float, feed_defined: bool, inverse_time: bool) -> Block:
    """Parse and check `line` (already cleaned) against the parser state GRBL holds (`motion` mode, whether a
    feed rate is set, G93 active). Raises GcodeError with GRBL's code."""
    block = Block()
    for letter, value, text in _words(line):
        if letter == "G":
            g = round(value, 1)
            if g not in G_GROUPS:
                raise GcodeError(20)
            if round(value, 4) != g:
                raise GcodeError(23)             # G value with a non-integer mantissa GRBL does not know
            group = G_GROUPS[g]
            if group in block.modal:
                raise GcodeError(21)
            block.modal[group] = g
        elif letter == "M":
            if value != int(value) or int(value) not in M_GROUPS:
                raise GcodeError(20)
            group = M_GROUPS[int(value)]
            if group in block.modal:
                raise GcodeError(21)
            block.modal[group] = int(value)
        elif letter in AXES:
            if letter in block.axes:
                raise GcodeError(25)
            block.axes[letter] = value
        elif letter in VALUE_WORDS:
            if letter in block.words:
                raise GcodeError(25)
            if letter in "FNPST" and value < 0:
                raise GcodeError(4)
            if letter == "N" and value > 9_999_999:
                raise GcodeError(27)
            if letter in "LNT" and "." in text:
                raise GcodeError(23) if letter != "N" else GcodeError(27)
            block.words[letter] = value
        else:
            raise GcodeError(20)
    _check(block, motion=motion, feed_defined=feed_defined, inverse_time=inverse_time)
    return block


def _check(block: Block, *, motion: float, feed_defined: bool, inverse_time: bool) -> None:
    modal, words, axes = block.modal, block.words, block.axes
    nonmodal = block.nonmodal
    axis_user = nonmodal in AXIS_USERS or modal.get("tlo") == 43.1    # commands that take the axis words
    if "motion" in modal and modal["motion"] in REFUSED:
        raise GcodeError(20)
    if axis_user and "motion" in modal and axes:
        raise GcodeError(24)                     # two commands that both want the axis words
    inverse = modal.get("feed_mode", 93 if inverse_time else 94) == 93
    mode = modal.get("motion", motion)
    moving = bool(axes) and not axis_user and mode != 80
    if mode in (1,) and moving and (("F" not in words) if inverse else not (feed_defined or "F" in words)):
        raise GcodeError(22)
    if nonmodal == 53 and mode not in (0, 1):
        raise GcodeError(30)
    if nonmodal == 4 and "P" not in words:
        raise GcodeError(28)
    if nonmodal == 10:
        if "L" not in words or "P" not in words:
            raise GcodeError(28)
        if words["L"] not in (2, 20):
            raise GcodeError(20)
        if not 0 <= words["P"] <= 6 or words["P"] != int(words["P"]):
            raise GcodeError(29)
        if not axes:
            raise GcodeError(26)
    if nonmodal == 92 and not axes:
        raise GcodeError(26)
    if axes and mode == 80 and not axis_user:
        raise GcodeError(31)                     # axis words with G80 active and nothing to use them
    used = {"F", "N", "S", "T"} | ({"P"} if nonmodal in (4, 10) else set())
    used |= {"L"} if nonmodal == 10 else set()
    if set(words) - used:
        raise GcodeError(36)                     # I J K R (no arcs here), a stray P or L
