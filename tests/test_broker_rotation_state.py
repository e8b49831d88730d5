"""What `coinstream status` says about the local broker's memory, from what `up` wrote."""

from __future__ import annotations

import json

import psutil

from coinstream.common.settings import load_settings
from coinstream.stack.broker_rotation import BrokerMemory, read_state, state_path, tree_rss
from coinstream.stack.health import local_broker_memory


def test_status_shows_the_memory_and_the_last_rotation(tmp_path):
    settings = load_settings(env_file=None, coinstream_data_dir=tmp_path)
    assert local_broker_memory(settings) == ""  # no `up` ran here
    path = state_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "rss_bytes": 75 * 1048576,
                "measured_at": "2026-12-06T04:00:00+00:00",
                "rotations": 0,
                "last_rotation_at": None,
                "last_rotation_rss_bytes": None,
            }
        )
    )
    assert local_broker_memory(settings) == "; memory 75 MiB at 2026-12-06T04:00:00+00:00, never rotated"
    path.write_text(
        json.dumps(
            {
                "rss_bytes": 70 * 1048576,
                "measured_at": "2026-12-06T05:00:00+00:00",
                "rotations": 3,
                "last_rotation_at": "2026-12-06T04:30:00+00:00",
                "last_rotation_rss_bytes": 300 * 1048576,
            }
        )
    )
    assert read_state(settings) == BrokerMemory(
        70 * 1048576, "2026-12-06T05:00:00+00:00", 3, "2026-12-06T04:30:00+00:00", 300 * 1048576
    )
    assert local_broker_memory(settings) == (
        "; memory 70 MiB at 2026-12-06T05:00:00+00:00, last rotation 2026-12-06T04:30:00+00:00 at 300 MiB (3 in all)"
    )
    # An external broker: nothing of the local one is shown.
    external = load_settings(env_file=None, coinstream_data_dir=tmp_path, kafka_bootstrap_servers="k:9092")
    assert local_broker_memory(external) == ""


def test_a_corrupt_state_file_is_no_state(tmp_path):
    settings = load_settings(env_file=None, coinstream_data_dir=tmp_path)
    state_path(settings).parent.mkdir(parents=True)
    state_path(settings).write_text("{not json")
    assert read_state(settings) is None and local_broker_memory(settings) == ""


def test_tree_rss_counts_the_children():
    me = psutil.Process()
    assert tree_rss(me.pid) >= me.memory_info().rss > 0
    assert tree_rss(2**22 + 12345) == 0  # no such process
