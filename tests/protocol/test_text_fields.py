"""Names, labels and messages in any printable Unicode; control characters, line breaks and bidi overrides
refused naming the character and its column (issue 15 item 8)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from labctl.protocol.fields import Chem, Label, Name, Text, check_text, describe_char, refused_char

LABELS = ["Li–In alloy overlayer", "β-PVDF dip coat", "Li₃N by N₂ plasma", "25 °C bath",
          "Li|Li cycling; 1 mA/cm²", "[/] markup is data", "Zoë’s “first” run"]


@pytest.mark.parametrize("value", LABELS)
def test_labels_accept_printable_unicode(value: str) -> None:
    assert TypeAdapter(Label).validate_python(value) == value
    assert TypeAdapter(Text).validate_python(value) == value


@pytest.mark.parametrize("value", ["Li₃N", "β-PVDF", "InCl3", "2-MeTHF", "LiTFSI/PEO", "Li–In"])
def test_chemical_names_accept_unicode(value: str) -> None:
    assert TypeAdapter(Chem).validate_python(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Li\u202eIn", "must not contain bidi overrides: U+202E RIGHT-TO-LEFT OVERRIDE at column 3"),
        ("ab\u2066c", "bidi overrides: U+2066 LEFT-TO-RIGHT ISOLATE at column 3"),
        ("a\nOUTP ON", "control characters or line breaks: U+000A LINE FEED at column 2"),
        ("run\r", "U+000D CARRIAGE RETURN at column 4"),
        ("x\u2028y", "U+2028 LINE SEPARATOR at column 2"),
        ("x\x1b[31m", "U+001B ESCAPE at column 2"),
        ("zero\u200bwidth", "invisible format characters: U+200B ZERO WIDTH SPACE at column 5"),
        ("\ue000", "private-use characters: U+E000"),
    ],
)
def test_refused_characters_are_named_with_their_column(value: str, message: str) -> None:
    for kind in (Label, Text, Chem, Name):
        with pytest.raises(ValidationError, match="must not contain") as err:
            TypeAdapter(kind).validate_python(value)
        assert message in str(err.value)


def test_names_stay_plain_and_say_which_character() -> None:
    assert check_text("name", "LIN-041", "--sample") == "LIN-041"
    with pytest.raises(ValueError, match=r"U\+03B2 GREEK SMALL LETTER BETA at column 5 of the value is not"):
        check_text("name", "LIN-β", "--sample")
    with pytest.raises(ValueError, match=r"`salt` must be a chemical name .*: U\+003B SEMICOLON at column 6"):
        check_text("chem", "InCl3;OUTP ON", "salt")


def test_describe_char() -> None:
    assert describe_char("\u2013") == "U+2013 EN DASH"
    assert describe_char("\x00") == "U+0000 NULL"
    assert describe_char("\x01") == "U+0001 control character"
    assert refused_char("Li–In β-PVDF Li₃N 25 °C") is None


def test_validate_accepts_a_unicode_protocol(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from labctl.protocol import load_protocol

    path = tmp_path / "unicode.yaml"
    path.write_text(
        "labctl: 1\nname: Li–In on β-PVDF, Li₃N at 25 °C\n"
        "sample: {id: LIN-0001, substrate: Li foil 450 µm, area: 1.13 cm²}\n"
        "steps:\n  - prepare_bath: {bath: alloy, salt: InCl₃, solvent: THF, concentration: 0.1 M,"
        " volume: 20 mL, temperature: 25 °C}\n"
        "  - operator: {message: Assemble the Li|Li cell — coated side up}\n",
        encoding="utf-8",
    )
    loaded = load_protocol(path)
    assert loaded.model.name == "Li–In on β-PVDF, Li₃N at 25 °C"


def test_a_bidi_override_in_a_file_names_line_and_character(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from labctl.protocol import load_protocol
    from labctl.protocol.problems import FileProblemsError

    path = tmp_path / "bidi.yaml"
    text = "labctl: 1\nname: \"safe \\u202Eevil\"\nsteps: [{wait: {duration: 1 s}}]\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FileProblemsError) as err:
        load_protocol(path)
    (p,) = err.value.problems
    assert p.line == 2 and p.field == "name"
    assert "U+202E RIGHT-TO-LEFT OVERRIDE at column 6" in p.message
