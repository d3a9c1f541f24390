"""The spool keeps every record it acknowledged, detects torn writes, and never deletes at its cap."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from spanledger._ingest.spool import Spool, SpoolFullError


def test_records_survive_seal_and_read_back_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        spool.append(f"record {i}".encode())
    segment = spool.seal()
    assert segment is not None and segment.suffix == ".ready"
    assert [r.decode() for r in spool.read(segment)] == [f"record {i}" for i in range(5)]
    assert spool.seal() is None  # nothing new
    spool.remove(segment)
    assert spool.size_bytes == 0
    spool.close()


def test_torn_tail_keeps_the_intact_records_and_is_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(b"first")
    spool.append(b"second")
    segment = spool.seal()
    assert segment is not None
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # a crash in the middle of the last write
    with caplog.at_level(logging.ERROR):
        assert list(spool.read(segment)) == [b"first"]
    assert spool.corrupt_records == 1
    flipped = bytearray(data)
    flipped[14] ^= 0xFF  # a flipped bit in the first payload
    segment.write_bytes(bytes(flipped))
    assert list(spool.read(segment)) == []
    spool.close()


def test_cap_refuses_new_records_without_touching_old_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    spool.append(b"x" * 50)
    with pytest.raises(SpoolFullError, match="full"):
        spool.append(b"y" * 50)
    segment = spool.seal()
    assert segment is not None
    assert list(spool.read(segment)) == [b"x" * 50]
    spool.close()


def test_a_new_owner_adopts_segments_of_a_dead_owner_but_not_of_a_live_one(tmp_path: Path) -> None:
    live = Spool(tmp_path, max_bytes=1 << 20)
    live.append(b"live")
    dead = Spool(tmp_path, max_bytes=1 << 20)
    dead.append(b"unsealed")  # never sealed: as after SIGKILL
    import os

    os.close(dead._lock_fd)  # the process is gone: its lock is released
    newcomer = Spool(tmp_path, max_bytes=1 << 20)
    assert newcomer.adopted_segments == 1
    payloads = [p for s in newcomer.ready_segments() for p in newcomer.read(s)]
    assert payloads == [b"unsealed"]
    assert live.dir.exists() and not dead.dir.exists()
    live.close()
    newcomer.close()
