"""The HTTP service: the library behind an API and a web page (``tailorgen serve``).

- ``settings``: what a server runs with (dataset, models, limits, token);
- ``engines``: the models, loaded once in the background; what each one answers;
- ``gate``: bounded concurrency and a bounded queue in front of the models (503 when full);
- ``outputs``: generated images under server-made request ids, never a path from a client's string;
- ``app``: the FastAPI application, thin over the library: each endpoint returns the CLI's record;
- ``study``, ``study_prepare``, ``study_results``, ``study_routes``: the human preference study;
- ``forget``: removing a user from the data and from everything made from it.

The web pages are plain HTML and a little JS served by the same app, not Gradio: they call the
same JSON API as any client (one code path, one queue: Gradio would add its own), need no further
dependency, and their stable element ids make the Playwright tests simple.
"""

from tailorgen.service.app import create_app
from tailorgen.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
