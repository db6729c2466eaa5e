"""Property tests: the C core agrees with the pure-Python reference on random pages."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from nitrometer import native
from tests.native import reference
from tests.native.pages import encode, layouts, page_values, successor

REASONS = {-1: "short", -2: "magic", -3: "version", -4: "bins", -5: "detail_bins",
           -6: "hists", -7: "bounds", -8: "bands", -9: "layout"}


def as_reference(page: native.Page) -> dict:
    """A C-decoded page in the reference's shape, for direct comparison."""
    hist = lambda h: {"lower": h.lower, "upper": h.upper, "count": h.counts}  # noqa: E731
    return {
        "kind": page.kind, "version": page.version,
        "counters": list(page.counters.values()),
        "read": hist(page.read), "write": hist(page.write),
        "bands": [{"low": b.low, "high": math.inf if b.high is None else b.high,
                   "read": b.read.counts, "write": b.write.counts} for b in page.bands],
    }


def same_floats(a, b):
    """Equal up to float rounding (C and Python order the arithmetic differently; denormals
    such as q = 5e-324 lose all relative precision)."""
    close = lambda x, y: math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-300)  # noqa: E731
    return all((math.isnan(x) and math.isnan(y)) or close(x, y) for x, y in zip(a, b))


def check_decode_agrees(buf: bytes):
    try:
        expected = reference.decode(buf)
    except reference.Invalid as exc:
        try:
            native.decode(buf)
        except native.PageError as err:
            assert REASONS[err.code] == exc.reason
            return None
        raise AssertionError(f"C accepted a page the reference refused ({exc.reason})") from None
    page = native.decode(buf)
    assert as_reference(page) == expected
    return page


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decode_agrees_with_reference(data):
    layout = data.draw(layouts())
    check_decode_agrees(encode(layout, data.draw(page_values(layout))))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_delta_and_quantiles_agree_with_reference(data):
    layout = data.draw(layouts())
    prev_values = data.draw(page_values(layout))
    cur_values = data.draw(successor(layout, prev_values))
    prev_buf, cur_buf = encode(layout, prev_values), encode(layout, cur_values)
    qs = data.draw(st.lists(st.floats(0, 1), min_size=1, max_size=16))

    expected, expected_reset = reference.delta(reference.decode(prev_buf),
                                               reference.decode(cur_buf))
    summary = native.summarize(native.decode(prev_buf), native.decode(cur_buf), qs)
    assert summary.reset == expected_reset
    assert as_reference(summary.delta) == expected
    for op, got in (("read", summary.read_q), ("write", summary.write_q)):
        h = expected[op]
        assert same_floats(got, [reference.quantile(h["lower"], h["upper"], h["count"], q)
                                 for q in qs])
    w = expected["write"]
    for band, got_r, got_w in zip(expected["bands"], summary.band_read_q, summary.band_write_q):
        assert same_floats(got_r, [reference.quantile(w["lower"], w["upper"], band["read"], q)
                                   for q in qs])
        assert same_floats(got_w, [reference.quantile(w["lower"], w["upper"], band["write"], q)
                                   for q in qs])
    # Never a negative or wrapped-to-huge delta: each count is at most what the device holds.
    assert all(c < 2**32 for c in summary.delta.read.counts + summary.delta.write.counts)
