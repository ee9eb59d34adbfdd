"""Settings for the whole test suite."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests check behaviour, never speed: no per-example deadline and no "too slow"
# health check, which a loaded CI machine would trip at random (timings belong in bench/).
settings.register_profile("bridge", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bridge")
