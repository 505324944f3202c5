"""The NIH label schema: NIH strings <-> multi-hot vectors, general labels, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from gdgan.labels import (
    FINDINGS,
    GENERAL_COLUMNS,
    N_FINDINGS,
    NIH_CARDIOMEGALY_BY_GROUP,
    NIH_FINDING_COUNTS,
    NIH_TOTAL_IMAGES,
    NO_FINDING,
    LabelError,
    check_gender,
    check_view,
    decode_findings,
    decode_general,
    encode_findings,
    encode_general,
    finding_index,
    general_matrix,
    parse_findings,
)


def test_schema_is_nih_fourteen_in_fixed_order() -> None:
    assert N_FINDINGS == 14
    assert FINDINGS[1] == "Cardiomegaly"
    assert list(FINDINGS) == sorted(FINDINGS)  # NIH's alphabetical order
    assert set(NIH_FINDING_COUNTS) == set(FINDINGS)
    assert GENERAL_COLUMNS == ("gender=F", "view=AP")


def test_nih_facts_consistent() -> None:
    # 2,776 Cardiomegaly images, split over the four (gender, view) groups; groups cover all 112,120.
    assert sum(p for p, _ in NIH_CARDIOMEGALY_BY_GROUP.values()) == NIH_FINDING_COUNTS["Cardiomegaly"]
    assert sum(n for _, n in NIH_CARDIOMEGALY_BY_GROUP.values()) == NIH_TOTAL_IMAGES


def test_encode_decode_round_trip() -> None:
    vec = encode_findings("Cardiomegaly|Effusion")
    assert vec.dtype == np.float32 and vec.shape == (14,)
    assert np.flatnonzero(vec).tolist() == [1, 4]
    assert decode_findings(vec) == "Cardiomegaly|Effusion"
    assert decode_findings(encode_findings(NO_FINDING)) == NO_FINDING
    assert encode_findings(NO_FINDING).sum() == 0
    assert encode_findings(["Hernia"])[7] == 1
    # Every single finding round-trips through its own column.
    for i, name in enumerate(FINDINGS):
        v = encode_findings(name)
        assert v[i] == 1 and v.sum() == 1 and decode_findings(v) == name


def test_decode_order_is_canonical() -> None:
    assert decode_findings(encode_findings("Pneumothorax|Atelectasis")) == "Atelectasis|Pneumothorax"


@pytest.mark.parametrize("bad", ["Cardiomegally", "cardiomegaly", "Effusion|Foo", "Edema|"])
def test_unknown_label_names_it(bad: str) -> None:
    culprit = next(p for p in bad.split("|") if p not in FINDINGS)
    with pytest.raises(LabelError, match=repr(culprit).replace("|", r"\|")):
        encode_findings(bad)


def test_finding_index_error_lists_known() -> None:
    with pytest.raises(LabelError, match="Cardiomegaly"):
        finding_index("Heart")
    assert finding_index("Pneumothorax") == 13


def test_no_finding_mixed_or_empty_is_error() -> None:
    with pytest.raises(LabelError, match="No Finding"):
        parse_findings("No Finding|Edema")
    with pytest.raises(LabelError, match="empty"):
        parse_findings("  ")


def test_general_labels() -> None:
    assert encode_general("F", "AP").tolist() == [1.0, 1.0]
    assert encode_general("M", "PA").tolist() == [0.0, 0.0]
    assert decode_general([1, 0]) == ("F", "PA")
    m = general_matrix(np.array([0, 1, 1]), np.array([1, 0, 1]))
    assert m.dtype == np.float32 and m.tolist() == [[0, 1], [1, 0], [1, 1]]
    with pytest.raises(LabelError, match="'X'"):
        check_gender("X")
    with pytest.raises(LabelError, match="'LL'"):
        check_view("LL")
    with pytest.raises(LabelError, match="2 entries"):
        decode_general([1, 0, 1])
    with pytest.raises(LabelError, match="14 entries"):
        decode_findings(np.zeros(13))
