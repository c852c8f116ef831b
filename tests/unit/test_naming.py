"""Collection names are always valid for Chroma (checked by Chroma itself) and unique."""

from __future__ import annotations

import chromadb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reembed.errors import NamingError
from reembed.naming import (
    check_label,
    chroma_id,
    collection_name,
    is_valid_collection_name,
    split_version_id,
    version_id,
)


@pytest.fixture(scope="module")
def chroma() -> chromadb.api.ClientAPI:
    return chromadb.EphemeralClient()


odd_text = st.text(min_size=1, max_size=80) | st.sampled_from(
    ["_", "-x-", "a..b", "1.2.3.4", "v:2025-08-12", "ü ñ 漢字", "a" * 700, ".", "__", "x:y/z"])


@settings(max_examples=300, deadline=None)
@given(family=odd_text, label=odd_text, model=odd_text)
def test_names_are_accepted_by_chroma(chroma: chromadb.api.ClientAPI, family: str, label: str,
                                      model: str) -> None:
    name = collection_name(family, label, model)
    assert is_valid_collection_name(name)
    chroma.create_collection(name, embedding_function=None)  # Chroma's own validation
    chroma.delete_collection(name)


@settings(max_examples=300, deadline=None)
@given(a=st.tuples(odd_text, odd_text, odd_text), b=st.tuples(odd_text, odd_text, odd_text))
def test_different_inputs_get_different_names(a: tuple[str, str, str],
                                              b: tuple[str, str, str]) -> None:
    if a != b:
        assert collection_name(*a) != collection_name(*b)


def test_readable_name_for_the_users_example() -> None:
    name = collection_name("duck_discord_messages", "2025-08-12", "nomic-embed-text")
    assert name == "duck_discord_messages__v2025-08-12__nomic-embed-text"


def test_reference_plan_name_is_sanitized() -> None:
    # The reference plan used `v:` which Chroma rejects.
    assert ":" not in collection_name("discord_messages", "v:2025-08-12", "nomic-embed-text")


@pytest.mark.parametrize("label", ["", "v:1", "a..b", "-x", "x" * 64, "with space"])
def test_bad_labels_are_refused_with_the_rule(label: str) -> None:
    with pytest.raises(NamingError, match="version label"):
        check_label(label)


def test_version_ids_round_trip() -> None:
    assert split_version_id(version_id("fam.x", "2025-08-12")) == ("fam.x", "2025-08-12")


def test_chroma_id_shape() -> None:
    assert chroma_id("msg_abc123", 0, "deadbeef" * 8) == "msg_abc123:0:deadbeef"
