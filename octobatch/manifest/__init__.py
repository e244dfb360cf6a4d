"""Reading manifests: YAML file -> validated, expanded job specs.

The package follows the data: `yamlpos` (YAML with the position of every value), `expand`
(defaults merged under each entry, matrix expanded into drafts), `templates` (`{variables}` in
id and prompt), `spec` (a draft checked against its model and hashed into a JobSpec), `ids`,
`files` (local files: where they may come from, what they must contain), `report` (every
problem at its line and column) and `loader` (the one call that runs them in order).
"""

from octobatch.manifest.loader import (
    Manifest,
    NotAManifest,
    Settings,
    load_manifest,
    load_manifests,
)
from octobatch.manifest.spec import canonical_hash

__all__ = ["Manifest", "NotAManifest", "Settings", "canonical_hash", "load_manifest",
           "load_manifests"]
