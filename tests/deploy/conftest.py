"""Each overlay is rendered once per test session: kustomize output does not change mid-run."""

from __future__ import annotations

import pytest

from tests.deploy.render import DEPLOY, OVERLAYS, Obj, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    """overlay name -> its rendered objects."""
    return {overlay: render(DEPLOY / "overlays" / overlay) for overlay in OVERLAYS}
