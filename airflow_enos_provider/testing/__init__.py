"""Test your DAGs against the EnOS emulator: the pytest plugin and what its fixtures hand out.

pytest loads :mod:`.pytest_plugin` (entry point ``pytest11``, name ``enos``) in every run where the
package is installed, so nothing here imports Airflow or the emulator until a test asks for a
fixture; :mod:`.fixtures` holds the parts that do. ``pytest -p no:enos`` leaves the plugin out.
"""

from __future__ import annotations
