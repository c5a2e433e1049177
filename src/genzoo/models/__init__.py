"""Model families; importing this package registers every model.

Every module and sub-package under ``genzoo.models`` is imported, at any depth, so a new
model is one file or one folder here and nothing else to edit. Models of other installed
packages register through the ``genzoo.models`` entry-point group (``[project.entry-points.
"genzoo.models"]`` naming the module that holds their ``@register_model`` classes).
"""

import importlib
import pkgutil
from importlib.metadata import entry_points

for _module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
    importlib.import_module(_module.name)

for _plugin in entry_points(group="genzoo.models"):
    _plugin.load()
