"""Scenario configuration: validation, overrides, presets, YAML files, seed defaults."""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pytest

from roadedge.envs.sim.config import (
    ConfigError,
    ScenarioConfig,
    load_scenario,
    normalize_overrides,
    preset_names,
)
from roadedge.envs.sim.rng import key_from_seed
from roadedge.envs.sim.simulator import Simulator

# --------------------------------------------------------------------------- bad keys and values


def test_typo_key_names_the_dotted_key():
    with pytest.raises(ConfigError, match=r"vehicles\.max_vehicle\b"):
        load_scenario("small", {"vehicles": {"max_vehicle": 3}})


@pytest.mark.parametrize(
    "overrides",
    [
        {"vehicles.max_vehicle": 3},
        {"vehicles__max_vehicle": 3},
    ],
)
def test_typo_key_in_flat_overrides(overrides):
    with pytest.raises(ConfigError, match=r"vehicles\.max_vehicle\b"):
        load_scenario("small", overrides)


def test_typo_key_message_lists_allowed_keys():
    with pytest.raises(ConfigError) as info:
        ScenarioConfig.from_dict({"vehicles": {"max_vehicle": 3}})
    msg = str(info.value)
    assert "vehicles.max_vehicle" in msg
    assert "max_vehicles" in msg  # the allowed keys help to spot the typo


def test_unknown_top_level_key_and_section():
    with pytest.raises(ConfigError, match="horizn"):
        load_scenario("small", {"horizn": 10})
    with pytest.raises(ConfigError, match="migrations"):
        load_scenario("small", {"migrations.cooldown_s": 1})


def test_out_of_range_names_key_and_range():
    with pytest.raises(ConfigError) as info:
        load_scenario("small", {"migration.cooldown_s": -1})
    msg = str(info.value)
    assert "migration.cooldown_s" in msg
    assert "out of range" in msg
    assert "[0.0, 1000000.0]" in msg


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("migration.rsu_overload_threshold", 1.5, "[0.0, 1.0]"),
        ("rsu.max_jobs", 0, "[1, 256]"),
        ("faults.max_reassignment_attempts", 0, "[1, 1000]"),
        ("horizon", 0, "[1, 10000000]"),
    ],
)
def test_out_of_range_parametrized(key, value, allowed):
    with pytest.raises(ConfigError) as info:
        load_scenario("small", {key: value})
    assert key in str(info.value)
    assert allowed in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("rsu.count", 2.5, "must be an integer"),
        ("rsu.count", "3", "must be an integer"),
        ("rsu.count", True, "must be an integer"),  # a bool is not a count
        ("migration.cooldown_s", "10", "must be a number"),
        ("migration.cooldown_s", float("nan"), "must be finite"),
        ("faults.replication", 1, "must be true or false"),
        ("name", 3, "must be a string"),
        ("tasks.priority_probs", "0.2,0.5,0.3", "list of numbers"),
    ],
)
def test_wrong_type(key, value, what):
    with pytest.raises(ConfigError) as info:
        load_scenario("small", {key: value})
    assert key in str(info.value)
    assert what in str(info.value)


def test_section_given_a_scalar():
    with pytest.raises(ConfigError, match=r"migration is a section"):
        load_scenario("small", {"migration": 5})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"vehicles.speed_min_mps": 20.0, "vehicles.speed_max_mps": 10.0}, "speed_min_mps"),
        ({"migration.prepare_fraction": 0.8}, "sum to 1"),
        ({"tasks.priority_probs": [0.5, 0.5, 0.5]}, "priority_probs"),
        ({"rsu.count": 1, "uav.count": 0}, "at least 2"),
        ({"vehicles.initial_vehicles": 30}, "initial_vehicles"),  # small: max 24
        ({"vehicles.speed_max_mps": 100.0, "map.block_m": 50.0}, "block_m"),
    ],
)
def test_cross_field_rules(overrides, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_scenario("small", overrides)


# --------------------------------------------------------------------------- overrides


def test_dotted_and_double_underscore_overrides():
    cfg = load_scenario(
        "small", {"migration.cooldown_s": 5, "rsu__count": 2, "faults__heartbeat_misses": 4}
    )
    assert cfg.migration.cooldown_s == 5.0
    assert isinstance(cfg.migration.cooldown_s, float)  # ints are accepted for floats
    assert cfg.rsu.count == 2
    assert cfg.faults.heartbeat_misses == 4
    # untouched values keep the preset's
    assert cfg.uav.count == 1
    assert cfg.map.grid_blocks == 2


def test_nested_and_flat_overrides_merge_in_any_order():
    a = load_scenario("small", {"migration": {"cooldown_s": 4.0}, "migration.backhaul_mbps": 50.0})
    b = load_scenario("small", {"migration.backhaul_mbps": 50.0, "migration": {"cooldown_s": 4.0}})
    for cfg in (a, b):
        assert cfg.migration.cooldown_s == 4.0
        assert cfg.migration.backhaul_mbps == 50.0
        assert cfg.migration.alpha_comp == 0.4


def test_normalize_overrides_shapes():
    assert normalize_overrides({"a.b": 1, "c__d__e": 2, "f": 3}) == {
        "a": {"b": 1},
        "c": {"d": {"e": 2}},
        "f": 3,
    }


def test_replace_returns_new_frozen_config(small_cfg):
    new = small_cfg.replace({"horizon": 17})
    assert new.horizon == 17
    assert small_cfg.horizon == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        small_cfg.horizon = 3  # type: ignore[misc]


def test_list_values_become_tuples():
    cfg = load_scenario("small", {"tasks.priority_probs": [0.1, 0.1, 0.8]})
    assert cfg.tasks.priority_probs == (0.1, 0.1, 0.8)


def test_dict_round_trip(small_cfg):
    assert ScenarioConfig.from_dict(small_cfg.to_dict()) == small_cfg
    failures = load_scenario("failures")
    assert ScenarioConfig.from_dict(failures.to_dict()) == failures


# --------------------------------------------------------------------------- presets and YAML


def test_expected_presets_exist():
    names = preset_names()
    assert {"small", "city", "failures"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads(name):
    cfg = load_scenario(name)
    assert isinstance(cfg, ScenarioConfig)
    assert cfg.name == name
    assert cfg.n_nodes >= 2


def test_preset_contents():
    small = load_scenario("small")
    assert (small.rsu.count, small.uav.count, small.horizon) == (3, 1, 200)
    assert small.vehicles.max_vehicles == 24
    failures = load_scenario("failures")
    # failures = city + frequent faults
    assert failures.faults.rsu_mttf_s == 1500.0
    assert failures.faults.uav_mttf_s == 1000.0
    assert failures.uav.battery_wh == 12.0
    assert failures.rsu.count == load_scenario("city").rsu.count
    # city is the documented defaults
    assert load_scenario("city") == ScenarioConfig(name="city")


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="small"):
        load_scenario("no_such_preset")


def test_yaml_file_with_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: small\nmigration: {cooldown_s: 5}\nrsu:\n  count: 2\n")
    cfg = load_scenario(str(path))
    assert cfg.name == "mine"  # named after the file
    assert cfg.migration.cooldown_s == 5.0
    assert cfg.rsu.count == 2
    assert cfg.uav.count == 1 and cfg.horizon == 200  # from the small base
    # a Path object works too, and overrides apply on top of the file
    cfg2 = load_scenario(path, {"migration.cooldown_s": 7})
    assert cfg2.migration.cooldown_s == 7.0
    assert cfg2.rsu.count == 2


def test_yaml_file_without_base_uses_defaults(tmp_path):
    path = tmp_path / "plain.yml"
    path.write_text("horizon: 50\n")
    cfg = load_scenario(path)
    assert cfg.horizon == 50
    assert cfg.rsu.count == ScenarioConfig().rsu.count


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: small\nvehicles: {max_vehicle: 3}\n")
    with pytest.raises(ConfigError, match=r"vehicles\.max_vehicle"):
        load_scenario(bad)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_scenario(not_mapping)
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(str(tmp_path / "missing.yaml"))


def test_yaml_base_cycle_is_a_config_error_naming_the_cycle(tmp_path):
    me = tmp_path / "me.yaml"
    me.write_text(f"base: {me}\nhorizon: 5\n")
    with pytest.raises(ConfigError, match=r"base cycle: .*me\.yaml -> .*me\.yaml"):
        load_scenario(me)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"base: {b}\n")
    b.write_text(f"base: {a}\n")
    with pytest.raises(ConfigError, match=r"base cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_scenario(str(a))
    # a chain without a cycle (file -> file -> preset) still loads
    b.write_text("base: small\nhorizon: 7\n")
    cfg = load_scenario(a)
    assert (cfg.horizon, cfg.rsu.count, cfg.name) == (7, 3, "a")


def test_yaml_base_must_be_a_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [small]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: base must be"):
        load_scenario(bad)


def test_non_utf8_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("horizon: 50\n# caf\u00e9 stop\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml:2: not UTF-8"):
        load_scenario(bad)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("horizon: 50\nmap: {grid_blocks: 2\n", 3),  # unclosed flow mapping
        ("horizon: 50\nrsu:\n  count: 3\n   cpu_ghz: 2\n", 4),  # bad indentation
        ("horizon: 50\nname: 'open\n", 3),  # unclosed quote
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path, text, line):
    bad = tmp_path / "broken.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=rf"broken\.yaml:{line}: malformed YAML"):
        load_scenario(bad)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("horizon: 50\nrsu: {count: 3}\nhorizon: 60\n", "horizon", 3),
        ("rsu:\n  count: 3\n  cpu_ghz: 2.0\n  count: 4\n", "count", 4),
        ("map: {grid_blocks: 2, grid_blocks: 3}\n", "grid_blocks", 1),
    ],
)
def test_duplicate_yaml_keys_are_refused_naming_key_file_and_line(tmp_path, text, key, line):
    dup = tmp_path / "dup.yaml"
    dup.write_text(text)
    with pytest.raises(ConfigError, match=rf"dup\.yaml:{line}: duplicate key '{key}'"):
        load_scenario(dup)


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: small\nrsu: &r {count: 3, cpu_ghz: 5.0}\nuav:\n  <<: *r\n  count: 1\n")
    cfg = load_scenario(path)
    assert (cfg.uav.count, cfg.uav.cpu_ghz) == (1, 5.0)


def test_too_small_grid_names_grid_blocks_and_why():
    with pytest.raises(ConfigError, match=r"map\.grid_blocks=1 .*rsu\.count=9.*4 intersections"):
        load_scenario("city", {"map.grid_blocks": 1})
    with pytest.raises(ConfigError, match=r"map\.grid_blocks=1 .*uav\.count=4.*1 blocks"):
        load_scenario("city", {"map.grid_blocks": 1, "rsu.count": 4})


def test_return_battery_fraction_zero_flies_until_empty_without_warnings():
    """0 is in the declared range: a UAV then leaves only once its battery is spent
    (MODEL.md 9.2, E < 0 * C), and nothing divides by it or multiplies it into inf."""
    cfg = load_scenario(
        "small",
        {
            "uav.return_battery_fraction": 0.0,
            "uav.battery_wh": 0.5,  # 1800 J: empty after 9-12 s at 150-200 W
            "uav.initial_battery_min_fraction": 1.0,
            "faults.uav_mttf_s": 1e12,
        },
    )
    uav = cfg.rsu.count
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim = Simulator(cfg, batch_size=1, check_invariants=True)
        sim.reset(np.array([key_from_seed(3)], dtype=np.uint64))
        left = None
        for tick in range(30):
            sim.step(np.zeros((1, cfg.n_nodes), dtype=np.int64))
            if not sim.world.node_up[0, uav]:
                left = tick
                break
    assert left is not None and left >= 8, left
    assert sim.world.battery_j[0, uav] <= 0.0  # it flew until the battery was spent


# --------------------------------------------------------------------------- seed defaults


def test_seed_000_defaults():
    m = ScenarioConfig().migration
    assert (m.rsu_overload_threshold, m.uav_overload_threshold, m.battery_threshold) == (
        0.8,
        0.7,
        0.2,
    )
    assert m.cooldown_s == 10.0
    assert m.backhaul_mbps == 100.0
    assert (m.alpha_comp, m.alpha_tx, m.alpha_lat) == (0.4, 0.3, 0.3)
    assert (m.prepare_fraction, m.sync_fraction, m.switch_fraction) == (0.7, 0.25, 0.05)
    assert m.max_tasks_per_migration == 3
    assert m.ewma_alpha == 0.1
    assert m.success_base == 0.9
    assert m.success_distance_m == 10000.0
    assert m.success_distance_cap == 0.3
    assert (m.success_load_weight, m.success_urgency_weight) == (0.1, 0.05)
    assert (m.rsu_capacity_weight, m.uav_capacity_weight) == (0.7, 0.8)
    assert m.dynamic_threshold_load == 0.7 and m.dynamic_threshold_factor == 0.9


def test_seed_001_defaults():
    f = ScenarioConfig().faults
    assert f.max_reassignment_attempts == 3
    assert (f.priority_high, f.priority_medium, f.priority_low) == (8, 5, 2)
    assert f.failure_cooldown_s == 300.0
    assert f.reliability_threshold == 0.8
    assert f.backup_count == 2


def test_contract_defaults():
    cfg = ScenarioConfig()
    assert cfg.dt_s == 1.0
    assert cfg.horizon == 300


def test_task_rate_beyond_what_the_arrival_draw_supports_is_rejected():
    with pytest.raises(ConfigError, match=r"tasks.rate_per_vehicle_hz \* dt_s must be at most 0.5"):
        load_scenario("small", {"tasks.rate_per_vehicle_hz": 0.6})
    load_scenario("small", {"tasks.rate_per_vehicle_hz": 0.5})  # the boundary is allowed


def _numeric_bounds(cfg):
    """(key, value) for each end of every numeric key's declared range."""
    for sect in dataclasses.fields(cfg):
        section = getattr(cfg, sect.name)
        if not dataclasses.is_dataclass(section):
            continue
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, (bool, str, tuple)):
                continue
            for bound in (f.metadata.get("lo"), f.metadata.get("hi")):
                if bound is not None:
                    yield f"{sect.name}.{f.name}", type(value)(bound)


@pytest.mark.long
def test_every_declared_range_end_is_accepted_and_runs_or_refused_by_a_named_rule():
    """Each numeric key at either end of its declared range, alone on `small`: either the
    config accepts it and the simulator runs 30 ticks of random valid moves with every
    invariant checked and no numpy warning, or a cross-key rule refuses it with a message
    naming the key (e.g. rsu.count = 0 leaves fewer than two nodes)."""
    checked = 0
    for key, value in _numeric_bounds(load_scenario("small")):
        try:
            cfg = load_scenario("small", {key: value})
        except ConfigError as err:
            assert key.split(".")[1] in str(err), (key, value, str(err))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sim = Simulator(cfg, batch_size=1, check_invariants=True)
            sim.reset(np.array([key_from_seed(1)], dtype=np.uint64))
            rng = np.random.default_rng(0)
            for _ in range(30):
                mask = sim.action_mask()[0]
                sim.step(np.array([rng.choice(np.flatnonzero(row)) for row in mask])[None])
        checked += 1
    assert checked > 80
