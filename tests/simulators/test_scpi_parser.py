"""The SCPI parser on its own (IEEE 488.2 / SCPI-99 rules), over a small command table of its own:
spellings, optional nodes, the tree rule of compound messages, numeric suffixes, MIN/MAX/DEF/UP/DOWN,
non-decimal numbers, quoted strings, common commands and the error each broken rule leaves in the queue."""

from __future__ import annotations

import pytest

from labctl.simulators.scpi import (
    ESR_CME,
    ESR_DDE,
    ESR_EXE,
    ESR_QYE,
    ErrorQueue,
    ScpiError,
    ScpiParser,
    StatusRegisters,
    Unit,
    boolean,
    compile_header,
    esr_bit,
    need,
    number,
    range_value,
    split_outside_quotes,
    string,
    to_float,
)


class Table:
    """A parser with a handful of commands, the values they set and the errors they raised."""

    def __init__(self) -> None:
        self.errors: list[int] = []
        self.values: dict[str, object] = {"level": 0.0, "vlim": 21.0, "nplc": 1.0, "name": "", "delay": {}}
        self.calls: list[Unit] = []
        p = self.parser = ScpiParser(lambda code, msg: self.errors.append(code))
        p.add("*IDN", lambda u: "ACME,1,2,3", query=True)
        p.add("*RST", lambda u: self.values.update(level=0.0))
        p.add(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", self._set("level", -1.05, 1.05, 0.0))
        p.add(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", lambda u: f"{self.values['level']:g}",
              query=True)
        p.add(":SOURce[1]:CURRent:VLIMit[:LEVel]", self._set("vlim", 0.02, 210.0, 21.0))
        p.add(":SOURce[1]:CURRent:VLIMit[:LEVel]", lambda u: f"{self.values['vlim']:g}", query=True)
        p.add(":SENSe[1]:VOLTage[:DC]:NPLCycles", self._set("nplc", 0.01, 10.0, 1.0))
        p.add(":SENSe[1]:VOLTage[:DC]:NPLCycles", lambda u: f"{self.values['nplc']:g}", query=True)
        p.add(":SOURce[1]:CURRent:DELay:USER<n>", self._user_delay)
        p.add(":SOURce[1]:CURRent:DELay:USER<n>", self._get_delay, query=True)
        p.add(":DISPlay:USER:TEXT", lambda u: self.values.update(name=string(need(u, 1)[0])))
        p.add(":TRACe:DATA", lambda u: ",".join(need(u, 2, 4)), query=True)
        p.add(":BLOCk", lambda u: b"#0\x00\x01", query=True)

    def _set(self, key: str, low: float, high: float, default: float):
        def handler(u: Unit) -> None:
            self.calls.append(u)
            self.values[key] = number(need(u, 1)[0], low, high, default)
        return handler

    def _user_delay(self, u: Unit) -> None:
        n = u.suffixes[-1] if u.suffixes else 1
        if not 1 <= n <= 5:
            raise ScpiError(-114)
        self.values["delay"][n] = number(need(u, 1)[0], 0, 1e4)

    def _get_delay(self, u: Unit) -> str:
        return f"{self.values['delay'].get(u.suffixes[-1], 0):g}"

    def __call__(self, line: str) -> str | bytes | None:
        return self.parser.execute(line)


def test_short_and_long_forms_any_case_and_nothing_in_between():
    pat = compile_header(":SOURce[1]:CURRent:VLIMit[:LEVel]")
    for ok in (":SOUR:CURR:VLIM", ":SOURCE:CURRENT:VLIMIT", ":SOUR1:CURR:VLIM:LEV", ":SOUR:CURR:VLIMIT:LEV"):
        assert pat.match(ok), ok
    for bad in (":SOURC:CURR:VLIM", ":SOU:CURR:VLIM", ":SOUR:CURR:VLI", ":SOUR:CURR:VLIM:LE"):
        assert not pat.match(bad), bad
    t = Table()
    for spelling in ("sour:curr 0.5", "Source:Current 0.5", ":SOUR:CURR:LEV:IMM:AMPL 0.5", "SOURCE1:CURR .5"):
        t.values["level"] = 0.0
        assert t(spelling) is None and t.values["level"] == 0.5, spelling
    assert t(":sour:curr?") == "0.5" and t.errors == []


def test_optional_nodes_left_out_are_the_same_command():
    t = Table()
    assert t(":SENS:VOLT:DC:NPLC 2") is None
    assert t(":SENSe:VOLTage:NPLCycles?") == t(":SENS1:VOLT:DC:NPLC?") == t("sens:volt:nplc?") == "2"
    assert t.errors == []
    assert t(":VOLT:NPLC?") is None and t.errors == [-113]  # :SENSe is not optional in this table


def test_leading_optional_root_node():
    t = Table()
    t.parser.add("[:SENSe[1]]:VOLTage[:DC]:RANGe", lambda u: "20", query=True)
    assert t(":SENSe:VOLTage:RANGe?") == t(":VOLT:RANG?") == t("volt:dc:rang?") == "20"
    assert t.errors == []


def test_compound_message_tree_rule_and_common_commands_keep_the_path():
    t = Table()
    assert t(":SOUR:CURR:VLIM 3;VLIM?") == "3"  # VLIM relative to :SOUR:CURR
    assert t(":SOUR:CURR:VLIM 4;*IDN?;VLIM?") == "ACME,1,2,3;4"  # *IDN? does not change the path
    assert t(":SOUR:CURR 0.1;:SENS:VOLT:NPLC 5;NPLC?;:SOUR:CURR?") == "5;0.1"
    assert t("*RST;:*IDN?") == "ACME,1,2,3"  # ':*IDN?' (pymeasure writes ':*CLS') is a common command
    assert t(":SOUR:CURR 0.2;;:SOUR:CURR?;") == "0.2"  # empty units are nothing
    assert t.errors == []


def test_an_error_ends_the_message_and_an_unanswered_query_is_lost():
    t = Table()
    assert t(":SOUR:CURR 0.1;:BOGUS;:SOUR:CURR 0.3;:SOUR:CURR?") is None
    assert t.values["level"] == 0.1 and t.errors == [-113]
    assert t(":SOUR:CURR?;:SOUR:CURR 9;:SOUR:CURR?") == "0.1"  # the reply so far is still sent
    assert t.errors == [-113, -222]


def test_numeric_suffixes():
    t = Table()
    assert t(":SOUR:CURR:DEL:USER3 0.25;:SOUR:CURR:DEL:USER3?;USER1?") == "0.25;0"
    assert t(":SOUR:CURR:DEL:USER 1.5;:SOUR:CURR:DEL:USER1?") == "1.5"  # no suffix: 1
    assert t(":SOUR:CURR:DEL:USER9 1") is None and t.errors == [-114]  # the handler's range
    assert t(":SOUR2:CURR 1e-3") is None and t.errors == [-114, -114]  # [1] takes only 1
    assert t(":SOUR1:CURR 1e-3") is None and t.values["level"] == 1e-3


def test_min_max_def_and_non_decimal_numbers():
    t = Table()
    t(":SOUR:CURR:VLIM MAX")
    assert t.values["vlim"] == 210.0
    t(":SOUR:CURR:VLIM minimum")
    assert t.values["vlim"] == 0.02
    t(":SOUR:CURR:VLIM DEF")
    assert t.values["vlim"] == 21.0
    t(":SENS:VOLT:NPLC #H5;NPLC?")
    assert t.values["nplc"] == 5
    assert to_float("#B101") == 5 and to_float("#Q17") == 15 and to_float("+.5E1") == 5
    assert t.errors == []


def test_up_down_ranges():
    ranges = (1e-8, 1e-7, 1e-6, 1e-5)
    assert range_value("UP", ranges, 1e-7) == 1e-6
    assert range_value("DOWN", ranges, 1e-7) == 1e-8
    assert range_value("DOWN", ranges, 1e-8) == 1e-8 and range_value("UP", ranges, 1e-5) == 1e-5
    assert range_value("3e-7", ranges, 1e-8) == 1e-6  # the smallest range that holds the value
    assert range_value("-3e-7", ranges, 1e-8) == 1e-6
    assert range_value("MAX", ranges, 1e-8) == 1e-5 and range_value("MIN", ranges, 1e-5) == 1e-5
    with pytest.raises(ScpiError) as exc:
        range_value("1", ranges, 1e-8)
    assert exc.value.code == -222


def test_quoted_strings():
    t = Table()
    assert t(":DISP:USER:TEXT 'a;b,c'") is None and t.values["name"] == "a;b,c"
    assert t(':DISP:USER:TEXT "say ""hi"""') is None and t.values["name"] == 'say "hi"'
    assert t(":DISP:USER:TEXT 'it''s'") is None and t.values["name"] == "it's"
    assert split_outside_quotes("'a,b', 'c'", ",") == ["'a,b'", " 'c'"]
    assert t.errors == []
    assert t(":DISP:USER:TEXT 'open") is None and t.errors == [-151]  # unterminated
    assert t(":DISP:USER:TEXT plain") is None and t.errors == [-151, -104]  # not a string


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (":BOGUS 1", -113),
        (":SOUR:CURR", -109),  # missing parameter
        (":SOUR:CURR 1,2", -108),  # one too many
        (":SOUR:CURR 1 2", -103),  # two data without a comma
        (":SOUR:CURR 1,", -109),  # an empty element
        (":SOUR:CURR=1", -102),  # not a header
        (":SOUR:CURR ON", -104),  # character data where a number belongs
        (":SOUR:CURR 1.2.3", -120),  # not a number
        (":SOUR:CURR 5", -222),  # out of range
        (":SOURCECURRENTLONGER:CURR 1", -112),  # mnemonic over 12 characters
        ("*RST?", -113),  # a command that has no query form
        (":TRAC:DATA 1, 2", -113),  # a query that has no command form
        (":DISP:USER:TEXT 'a' 'b'", -103),
    ],
)
def test_each_broken_rule_leaves_its_error(line: str, code: int):
    t = Table()
    assert t(line) is None
    assert t.errors == [code]


def test_an_empty_last_parameter_where_the_instrument_allows_it():
    t = Table()
    t.parser.trailing_empty_ok = True
    assert t(":SOUR:CURR 0.5,") is None and t.values["level"] == 0.5 and t.errors == []
    assert t(":SOUR:CURR ,") is None and t.errors == [-109]  # only a trailing one, after a parameter
    assert t(":SOUR:CURR 1,,") is None and t.errors == [-109, -109]


def test_binary_replies_join_as_bytes():
    t = Table()
    assert t(":SOUR:CURR?;:BLOC?") == b"0;#0\x00\x01"


def test_helpers():
    assert boolean("ON") and not boolean("off") and boolean("1") and not boolean("0.4")
    with pytest.raises(ScpiError):
        boolean("MAYBE")
    with pytest.raises(ScpiError) as exc:
        need(Unit("X", ":X", False, ["1", "2"]), 1)
    assert exc.value.code == -108


def test_error_queue_overflow_keeps_the_oldest_and_marks_the_loss():
    q = ErrorQueue(capacity=3)
    for code in (-113, -222, -109, -104, -102):
        q.push(code, "x", 0.0)
    assert [q.pop()[0] for _ in range(3)] == [-113, -222, -350] and q.pop() is None


def test_status_registers():
    assert [esr_bit(c) for c in (-113, -222, -350, -410, 0)] == [ESR_CME, ESR_EXE, ESR_DDE, ESR_QYE, 0]
    s = StatusRegisters()
    assert s.read_esr() == 0x80 and s.read_esr() == 0  # power-on bit, cleared by reading
    s.esr |= ESR_CME
    assert s.stb(errors=1) == 0x04  # EAV; ESB not enabled
    s.ese = ESR_CME
    assert s.stb(errors=0) == 0x20
    s.sre = 0x20
    assert s.stb(errors=0) == 0x60  # MSS follows an enabled summary bit
