"""Pure logic of images: layer ids, Dockerfile parsing, references."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pysandbox as modal
from pysandbox._core.spec import RootFS
from pysandbox.exception import InvalidError
from pysandbox.image import build, dockerfile, reference, store


@given(st.lists(st.text(st.characters(exclude_characters="\0"), min_size=1, max_size=20), min_size=1, max_size=5))
def test_layer_ids_are_deterministic_and_depend_on_every_step(commands):
    image = modal.Image.debian_slim(python_version="3.11").run_commands(*commands)
    ids = build.layer_ids(image._steps)
    assert ids == build.layer_ids(modal.Image.debian_slim(python_version="3.11").run_commands(*commands)._steps)
    assert len(set(ids)) == len(ids) and all(len(i) == store.ID_LENGTH for i in ids)
    changed = build.layer_ids(modal.Image.debian_slim(python_version="3.13").run_commands(*commands)._steps)
    assert changed[0] == ids[0]  # the same Debian below; 3.13 is a layer of its own on it
    assert not set(changed[1:]) & set(ids[1:])  # a changed base changes every layer above it


def test_secret_values_do_not_enter_layer_ids():
    one = modal.Image.debian_slim().run_commands("true", secrets=[modal.Secret.from_dict({"K": "a"})])
    two = modal.Image.debian_slim().run_commands("true", secrets=[modal.Secret.from_dict({"K": "b"})])
    assert build.layer_ids(one._steps) == build.layer_ids(two._steps)


def test_secrets_may_be_any_collection_as_in_modal():
    secret = modal.Secret.from_dict({"K": "a"})
    as_list = modal.Image.debian_slim().run_commands("true", secrets=[secret])
    for secrets in ({secret}, (secret,)):
        image = modal.Image.debian_slim().run_commands("true", secrets=secrets)
        assert build.layer_ids(image._steps) == build.layer_ids(as_list._steps)
    with pytest.raises(modal.exception.InvalidError, match="secrets must be a list"):
        modal.Image.debian_slim().run_commands("true", secrets=secret)


def test_dockerfile_instructions_join_continuations_and_drop_comments():
    text = "# c\nFROM x\nRUN a \\\n  # inner comment\n  && b\n\nenv A=1\n"
    assert dockerfile.instructions(text) == [("FROM", "x"), ("RUN", "a  && b"), ("ENV", "A=1")]


def test_dockerfile_env_forms():
    assert dockerfile.env_pairs('A=1 B="two words"') == {"A": "1", "B": "two words"}
    assert dockerfile.env_pairs("LEGACY value with spaces") == {"LEGACY": "value with spaces"}


@given(st.from_regex(r"[a-z0-9]{1,10}(/[a-z0-9]{1,10}){0,2}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
def test_references_round_trip(name, tag):
    ref = reference.parse(f"{name}:{tag}")
    assert reference.parse(str(ref)) == ref and ref.tag == tag


def test_too_many_layers_for_one_overlay_mount_is_a_clear_error():
    lowers = tuple(f"/var/lib/pysandbox/images/layers/{i:032d}/rootfs" for i in range(60))
    build.check_mountable(RootFS("im-x", lowers[:20]))
    with pytest.raises(InvalidError, match="60 layers with files"):
        build.check_mountable(RootFS("im-x", lowers))
