"""snpe-diagview CSV parser: per-inference totals in ms, loud failures with the output head."""

from __future__ import annotations

from pathlib import Path

import pytest

from blox_lat.devices._snpe_parse import SnpeOutputError, parse_diagview_csv, read_diagview_csv
from blox_lat.errors import BloxLatError

DATA = Path(__file__).parent / "data" / "snpe"


def test_per_inference_totals_in_ms():
    assert read_diagview_csv(DATA / "diagview_dsp_3inferences.csv") == pytest.approx([2.417, 1.988, 2.0035])


def test_forward_propagate_statistic():
    assert read_diagview_csv(DATA / "diagview_dsp_3inferences.csv", "forward") == pytest.approx([2.105, 1.710, 1.722])


def test_netrun_label_and_crlf():
    assert read_diagview_csv(DATA / "diagview_netrun_label.csv") == pytest.approx([1.502, 1.498])


def test_text_summary_is_rejected_with_its_head():
    with pytest.raises(SnpeOutputError) as info:
        read_diagview_csv(DATA / "diagview_malformed.csv")
    assert isinstance(info.value, BloxLatError)
    assert "missing column" in str(info.value)
    assert info.value.head.startswith("Log File Created")
    assert "Load: 52310 us" in str(info.value)  # the first 8 lines travel with the error


def test_empty_output():
    with pytest.raises(SnpeOutputError, match="empty CSV"):
        parse_diagview_csv("")


def test_no_inference_rows_is_an_error_not_zero():
    text = "Layer Id,Layer Name,Message,Time,Unit of Measurement\n,,Init,100,USEC\n"
    with pytest.raises(SnpeOutputError, match="no 'Total Inference Time"):
        parse_diagview_csv(text)


@pytest.mark.parametrize(
    ("row", "message"),
    [(",,Total Inference Time,12ms,USEC", "non-numeric"), (",,Total Inference Time,12,CYCLES", "unit 'CYCLES'"),
     (",,Total Inference Time", "short row")],
)
def test_bad_rows(row, message):
    text = "Layer Id,Layer Name,Message,Time,Unit of Measurement\n" + row + "\n"
    with pytest.raises(SnpeOutputError, match=message):
        parse_diagview_csv(text)


def test_prefix_of_statistic_name_does_not_match():
    text = ("Layer Id,Layer Name,Message,Time,Unit of Measurement\n"
            ",,Total Inference Time Breakdown,5,USEC\n,,Total Inference Time,7,MSEC\n")
    assert parse_diagview_csv(text) == [7.0]


def test_unknown_statistic_is_a_value_error():
    with pytest.raises(ValueError):
        parse_diagview_csv("x", statistic="init")
