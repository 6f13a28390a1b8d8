"""metrics.jsonl writing/reading, TensorBoard events and the console statistics block."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from theorygrpo_jax.metrics import MetricsWriter, format_stats_block, read_metrics


def test_write_and_read_back(tmp_path: Path) -> None:
    with MetricsWriter(tmp_path) as writer:
        writer.write(1, {"mean_reward": 1.5, "success_rate": np.float32(0.25),
                         "kl": jnp.asarray(0.01), "unique_successes": np.int64(3), "ok": True})
        writer.write(2, {"mean_reward": 2.5})
        # Each line is on disk as soon as it is written.
        assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    records = read_metrics(tmp_path)
    assert records[0] == {"step": 1, "mean_reward": 1.5, "success_rate": 0.25,
                          "kl": pytest.approx(0.01), "unique_successes": 3, "ok": True}
    assert records[1] == {"step": 2, "mean_reward": 2.5}
    assert read_metrics(tmp_path / "metrics.jsonl") == records
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_tensorboard_scalars_readable(tmp_path: Path) -> None:
    from tensorboardX.proto import event_pb2 as pb
    with MetricsWriter(tmp_path) as writer:
        writer.write(5, {"loss": 0.5})
        writer.write(6, {"loss": 0.25})
    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    values, pos = [], 0
    while pos < len(data):       # TFRecord framing: u64 length, u32 crc, payload, u32 crc
        length = int.from_bytes(data[pos:pos + 8], "little")
        event = pb.Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 12 + length + 4
        values += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
    assert values == [(5, "loss/total", 0.5), (6, "loss/total", 0.25)]   # grouped: metrics.tag_of


def test_custom_tags_and_text(tmp_path: Path) -> None:
    """A key tag_of cannot group by name (a custom reward term) gets the tag it is given."""
    from tensorboardX.proto import event_pb2 as pb
    with MetricsWriter(tmp_path, tags={"my_term": "reward/my_term"}) as writer:
        writer.write(1, {"my_term": 2.0, "kl": 0.5})
        writer.write_text(1, "samples", "| a | b |")
    (event_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    data, pos, tags, texts = event_file.read_bytes(), 0, set(), []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 8], "little")
        event = pb.Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 12 + length + 4
        for v in event.summary.value:
            tags.add(v.tag)
            if v.metadata.plugin_data.plugin_name == "text":
                texts.append(v.tensor.string_val[0].decode())
    assert {"reward/my_term", "policy/kl"} <= tags and texts == ["| a | b |"]
    assert read_metrics(tmp_path) == [{"step": 1, "my_term": 2.0, "kl": 0.5}]   # flat keys


def test_resume_appends_and_skips_truncated_line(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path, tensorboard=False)
    writer.write(1, {"a": 1.0})
    writer.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "a": 2.')          # a crash mid-line
    assert read_metrics(tmp_path) == [{"step": 1, "a": 1.0}]
    with MetricsWriter(tmp_path, tensorboard=False) as writer:
        writer.write(2, {"a": 2.0})
    assert read_metrics(tmp_path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}]
    assert not (tmp_path / "tensorboard").exists()


def test_bad_input(tmp_path: Path) -> None:
    with MetricsWriter(tmp_path, tensorboard=False) as writer:
        with pytest.raises(TypeError, match="metric 'x'"):
            writer.write(1, {"x": [1.0, 2.0]})
        with pytest.raises(ValueError, match="'step'"):
            writer.write(1, {"step": 3})
    with pytest.raises(ValueError, match="closed"):
        writer.write(2, {"a": 1.0})
    with pytest.raises(FileNotFoundError, match="no such metrics file"):
        read_metrics(tmp_path / "elsewhere")


def test_stats_block_matches_seed_layout() -> None:
    block = format_stats_block(
        100,
        {"mean_reward": 15.2341, "success_rate": 0.452, "total_loss": 0.1234,
         "policy_loss": np.float32(0.0987), "kl_loss": 0.0123, "entropy": 2.3456},
        buffer={"size": 234, "capacity": 1000, "mean_reward": 18.449, "success_rate": 0.6234},
        phase=2)
    assert block == "\n".join([
        "=" * 80,
        "Episode 100 Statistics:",
        "=" * 80,
        "  mean_reward         : 15.2341",
        "  success_rate        : 0.4520",
        "  total_loss          : 0.1234",
        "  policy_loss         : 0.0987",
        "  kl_loss             : 0.0123",
        "  entropy             : 2.3456",
        "",
        "Replay Buffer:",
        "  Size: 234/1000",
        "  Mean Reward: 18.45",
        "  Success Rate: 62.34%",
        "",
        "Curriculum Phase: 2",
        "=" * 80,
    ])


def test_stats_block_shows_a_small_kl_in_scientific_notation() -> None:
    block = format_stats_block(3, {"kl": -3.2e-05, "entropy": 0.0})
    assert "  kl                  : -3.2e-05" in block.splitlines()    # not -0.0000
    assert "  entropy             : 0.0000" in block.splitlines()


def test_stats_block_without_buffer_and_phase() -> None:
    block = format_stats_block(7, {"unique": 3, "kl": float("nan")})
    assert block.splitlines() == ["=" * 80, "Episode 7 Statistics:", "=" * 80,
                                  "  unique              : 3", "  kl                  : nan",
                                  "=" * 80]
    assert "Replay Buffer" not in block and "Curriculum" not in block
