import pytest

from neuroscribe.config import ConfigError, RunConfig, load_config


def test_defaults_are_the_embedded_offline_run():
    cfg = RunConfig()
    assert cfg.subject.model == "smollm2-135m-instruct"
    assert cfg.unit_indices == list(range(8))
    assert "baseline/ngram" in cfg.explain.explainers


def test_file_then_flags_override(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[collect]\nsite = "layers.3.mlp"\nunits = [1, 5]\n[explain]\nsamples = 2\n')
    cfg = load_config(p, {"collect.site": "layers.4.mlp", "explain.samples": None})
    assert cfg.collect.site == "layers.4.mlp"  # the flag wins
    assert cfg.unit_indices == [1, 5]  # the file's value stays
    assert cfg.explain.samples == 2  # an unset flag does not override


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[collect]\nunitz = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'collect.unitz'"):
        load_config(p)


def test_bad_values_and_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[collect\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="collect"):
        load_config(None, {"collect.units": 0})


def test_config_hash_is_stable_and_sensitive():
    a, b = RunConfig(), RunConfig()
    assert a.config_hash == b.config_hash
    c = load_config(None, {"collect.units": 9})
    assert c.config_hash != a.config_hash


def test_unreadable_config_files_name_themselves(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00[collect]")
    with pytest.raises(ConfigError, match=f"config file {binary} is not UTF-8 text"):
        load_config(binary)


def test_an_empty_list_of_annotators_is_refused():
    with pytest.raises(ConfigError, match="explain.explainers: List should have at least 1"):
        load_config(None, {"explain.explainers": []})
    with pytest.raises(ConfigError, match="simulate.simulators"):
        load_config(None, {"simulate.simulators": []})


def test_the_default_config_hash_is_unchanged():
    """Field docstrings and CLI metadata are not part of what a run computes."""
    assert RunConfig().config_hash == "22e8a307f62b0504"


def test_the_stored_config_carries_no_credentials_in_urls(tmp_path):
    import json
    from contextlib import closing

    from neuroscribe.warehouse import connect
    from neuroscribe.warehouse.runs import start_run

    url = "https://alice:s3cret@llm.example.com:8443/v1?api_key=sk-abcdefghijklmnop#x"
    cfg = load_config(None, {"annotators": {"openai/m": {"base_url": url}}})
    assert cfg.annotators["openai/m"].base_url == url  # the run itself uses the URL given
    public = cfg.model_dump(mode="json")  # what the warehouse, the hash and Prefect see
    assert public["annotators"]["openai/m"]["base_url"] == "https://llm.example.com:8443/v1"
    from prefect.flows import Flow  # Prefect's own serialisation of a flow-run parameter

    sent = Flow(lambda cfg: None, name="probe").serialize_parameters({"cfg": cfg})
    assert "s3cret" not in str(sent) and "sk-abc" not in str(sent)
    with closing(connect(tmp_path / "w.duckdb")) as con:
        start_run(con, "r1", cfg)
        stored = con.execute("SELECT config_json FROM runs").fetchall()[0][0]
    assert "s3cret" not in stored and "sk-abc" not in stored and "alice" not in stored
    assert json.loads(stored)["annotators"]["openai/m"]["base_url"].startswith("https://llm.")
