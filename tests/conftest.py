import pytest

from tailorgen.world import WorldConfig, build_world


@pytest.fixture(scope="session")
def small_shop(tmp_path_factory):
    """A small shop built once per test session; tests must not modify it."""
    out = tmp_path_factory.mktemp("shop") / "shop"
    build_world(WorldConfig(n_items=400, n_users=60, seed=7), out, progress=False)
    return out
