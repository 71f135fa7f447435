"""FileIO's mode check (Modal 1.5.5's _validate_mode): which modes, and which message for which mistake."""

import os

import pytest

from pysandbox.file_io import parse_mode

EXACTLY_ONE = "must have exactly one of create/read/write/append mode"


@pytest.mark.parametrize("mode, readable, writable, binary", [
    ("r", True, False, False), ("rb", True, False, True), ("w", False, True, False), ("wb", False, True, True),
    ("x", False, True, False), ("a", False, True, False), ("ab", False, True, True), ("r+", True, True, False),
    ("w+", True, True, False), ("a+", True, True, False), ("rb+", True, True, True), ("r+b", True, True, True),
])
def test_valid_modes(mode, readable, writable, binary):
    flags, *rest = parse_mode(mode)
    assert rest == [readable, writable, binary]
    assert bool(flags & os.O_APPEND) == ("a" in mode)


# The reference's table: "rw" and "rr" both say "exactly one" (the modes counted character by character,
# before repeated characters are looked for); the rest, "Invalid file mode: ...".
@pytest.mark.parametrize("mode, message", [
    ("rw", EXACTLY_ONE), ("rr", EXACTLY_ONE), ("wxa", EXACTLY_ONE), ("rbr", EXACTLY_ONE),
    ("", "Invalid file mode: "), ("b", "Invalid file mode: b"), ("+", "Invalid file mode: +"),
    ("z", "Invalid file mode: z"), ("rt", "Invalid file mode: rt"), ("wt", "Invalid file mode: wt"),
    ("rbb", "Invalid file mode: rbb"), ("r++", "Invalid file mode: r++"),
])
def test_invalid_modes_say_what_modal_says(mode, message):
    with pytest.raises(ValueError) as caught:
        parse_mode(mode)
    assert str(caught.value) == message
