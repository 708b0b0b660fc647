"""The ASGI entry point loads every view at startup and hides what startup made from the cyclic garbage
collector (sora_controller.asgi.settle_startup_objects), so no request pays for walking it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: this test process imported the views long ago, in whatever order.
PROBE = textwrap.dedent(
    """
    import gc, sys
    import sora_controller.asgi
    assert "jobs.api.views" in sys.modules, "the URLconf's views were not loaded at startup"
    from jobs.api.views import VideoJobDetailView
    from jobs.selectors import video_job_detail
    tracked = gc.get_objects()  # every generation but the permanent (frozen) one
    print(gc.get_freeze_count(),
          any(o is VideoJobDetailView for o in tracked),
          any(o is video_job_detail for o in tracked))

    class Cycle:
        pass

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    del a, b
    print(gc.collect() >= 2)  # garbage made after startup is still collected
    """
)


def test_startup_objects_are_frozen_after_the_views_load(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sora_controller.settings",
        "SECRET_KEY": "test-only",
        "DATA_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    frozen, view_tracked, selector_tracked, collected = out.stdout.split()
    # Django, DRF and our modules: tens of thousands of objects that live as long as the process.
    assert int(frozen) > 50_000
    # The views and the selectors they use were loaded before the freeze, so they are among the frozen.
    assert (view_tracked, selector_tracked) == ("False", "False")
    assert collected == "True"
