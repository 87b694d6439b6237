from tests.faults.test_control_characters import *
from tests.faults.test_control_characters import hostile_proposal

def test_dbg(httpserver, tmp_path, run_cli):
    scenario = h.make_scenario(SOURCE)
    h.Router([scenario]).install(httpserver)
    base = httpserver.url_for("/").rstrip("/")
    config = conftest.write_config(tmp_path / "s.toml", data_dir=tmp_path / "d",
                                   sources={SOURCE: scenario.endpoints(base)}, fetch=h.FETCH_DEFAULTS)
    print(run_cli("--config", str(config), "run").stdout)
    scenario.pending_version(True)
    print(run_cli("--config", str(config), "run").stdout)
    scenario.extra = [hostile_proposal()]
    print(run_cli("--config", str(config), "run").stdout)
    print(run_cli("--config", str(config), "changes").stdout)
