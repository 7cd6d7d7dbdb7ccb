"""The HTTP service: the library behind an API and a web page (``tailorgen serve``).

- ``settings``: what a server runs with (dataset, models, limits, token);
- ``engines``: the models, loaded once in the background; what each one answers;
- ``gate``: bounded concurrency and a bounded queue in front of the models (503 when full);
- ``outputs``: generated images under server-made request ids, never a path from a client's string;
- ``app``: the FastAPI application, thin over the library: each endpoint returns the CLI's record.
"""

from tailorgen.service.app import create_app
from tailorgen.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
