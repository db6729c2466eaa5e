"""Fuzzing the decoder: random and mutated bytes only ever give a page or a clean error."""

from __future__ import annotations

import random
import struct

from nitrometer import logpage, native
from tests.native.pages import realistic_page
from tests.native.test_oracle import check_decode_agrees

WIDE_BINS = [(lo, up, 3) for lo, up in logpage.power_of_two_bounds(40)]
# 40 bins: valid until its version says IO-size detail (at most 32 bins) follows.
WIDE_EBS = logpage.encode_page("ebs", {"total_read_ops": 7}, WIDE_BINS, WIDE_BINS)
# Its last bins end 2^13 us apart near 2^60 us: moving the last upper bound to
# 2^60 + 1 makes two bounds one value in seconds.
FAR = 2**60
FAR_BINS = [(0, 1, 1), (1, FAR - 2**13, 2), (FAR - 2**13, FAR, 3), (FAR, FAR + 2**13, 4)]
FAR_EBS = logpage.encode_page("ebs", {"total_read_ops": 10}, FAR_BINS, FAR_BINS)
FAR_LAST_UPPER = logpage.OFF_READ_HIST + 8 + 24 * 3 + 8
SEEDS = [realistic_page("instance_store", seed=1), realistic_page("ebs", seed=2), WIDE_EBS,
         FAR_EBS]

# Fields whose values steer the decoder: magic, version, num_bins, num_of_hists, sizes, and
# the far seed's last upper bound.
HOT_FIELDS = [(0, "<I"), (4, "<I"), (512, "<Q"), (2056, "<Q"), (3600, "<I")] + [
    (3604 + 4 * i, "<I") for i in range(8)] + [(FAR_LAST_UPPER, "<Q")]
HOT_VALUES = [0, 1, 2, 7, 8, 9, 31, 32, 33, 63, 64, 65, 2**31, 2**32 - 1, 2**63, 2**64 - 1,
              FAR + 1]
DECODE_ERRORS = {-1, -2, -4, -5, -6, -7, -8, -11}  # every code decode can give


def mutate(rng: random.Random) -> bytes:
    buf = bytearray(rng.choice(SEEDS))
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.4:
            offset, fmt = rng.choice(HOT_FIELDS)
            size = struct.calcsize(fmt)
            if offset + size <= len(buf):
                struct.pack_into(fmt, buf, offset, rng.choice(HOT_VALUES) % 2 ** (8 * size))
        elif roll < 0.7:
            for _ in range(rng.randint(1, 16) if buf else 0):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif roll < 0.85:
            del buf[rng.randrange(len(buf) + 1):]
        else:
            buf += rng.randbytes(rng.randrange(64))
    return bytes(buf)


def random_bytes(rng: random.Random) -> bytes:
    buf = bytearray(rng.randbytes(rng.choice([0, 3, 8, 100, 4095, 4096, 8191, 8192, 9000])))
    if len(buf) >= 4 and rng.random() < 0.7:
        struct.pack_into("<I", buf, 0, rng.choice([0x3C23B510, 0xEC2C0D7E]))
    if len(buf) >= 8 and rng.random() < 0.7:
        struct.pack_into("<I", buf, 4, rng.choice([0, 1, 2]))
    return bytes(buf)


def test_hundred_thousand_inputs_decode_or_fail_cleanly():
    rng = random.Random(0xD0)
    outcomes = {"page": 0, "error": 0}
    newer = {"bands": 0, "no bands": 0}  # versions past 1, their detail part valid or not
    codes = set()
    for i in range(100_000):
        buf = mutate(rng) if i % 2 else random_bytes(rng)
        if i % 10 == 0:  # one in ten also against the oracle: same verdict, same values
            outcome = check_decode_agrees(buf)
            outcomes["page" if outcome is not None else "error"] += 1
            continue
        try:
            page = native.decode(buf)
            page.to_dict()  # every field readable
            outcomes["page"] += 1
            if page.version > 1 and len(buf) >= logpage.DETAIL_PAGE_LEN:
                newer["bands" if page.bands else "no bands"] += 1
        except native.PageError as err:
            assert err.code in DECODE_ERRORS
            codes.add(err.code)
            outcomes["error"] += 1
    # The run exercised both sides, not only one kind of rejection.
    assert outcomes["page"] > 1000 and outcomes["error"] > 1000
    assert min(newer.values()) > 10, newer
    assert codes == DECODE_ERRORS, "every validation path was reached"
