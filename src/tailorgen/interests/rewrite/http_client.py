"""Any OpenAI-compatible chat completions server (vLLM, llama.cpp server, Ollama, a hosted API)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence

from tailorgen.interests.rewrite.lexicon import REQUIRED_ATTRIBUTES, VocabularyLike
from tailorgen.interests.rewrite.llm import BackendError, Completion, LLMRewriter

API_KEY_ENV = "TAILORGEN_LLM_API_KEY"


class HTTPRewriter(LLMRewriter):
    """An OpenAI-compatible ``POST {base_url}/v1/chat/completions`` server.

    ``base_url`` may end in ``/v1`` or not. The API key is ``api_key`` or else the environment
    variable ``TAILORGEN_LLM_API_KEY``; none is sent when neither is set. Connection errors,
    timeouts, HTTP 429 and 5xx are retried ``retries`` times with exponential backoff; what still
    fails, and any other HTTP error, falls back to the template with the reason recorded.
    """

    backend = "http"

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        api_key: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 120,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        vocabulary: VocabularyLike | None = None,
        min_chars: int = 20,
        max_chars: int = 400,
        required_attributes: Sequence[str] = REQUIRED_ATTRIBUTES,
    ):
        super().__init__(
            vocabulary=vocabulary, min_chars=min_chars, max_chars=max_chars, required_attributes=required_attributes
        )
        if not re.match(r"^https?://", base_url):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._client = None

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    def _http(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def close(self) -> None:
        """Close the pooled connections (a later rewrite opens new ones)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HTTPRewriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _complete(self, messages: list[dict[str, str]]) -> Completion:
        import httpx

        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        headers = {}
        if key := (self.api_key or os.environ.get(API_KEY_ENV)):
            headers["Authorization"] = f"Bearer {key}"
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._http().post(self.url, json=body, headers=headers)
            except httpx.HTTPError as e:
                error = f"{type(e).__name__} calling {self.url}: {e}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                error = f"HTTP {response.status_code} from {self.url}: {response.text[:200]}"
                continue
            if response.status_code != 200:
                raise BackendError(f"HTTP {response.status_code} from {self.url}: {response.text[:200]}")
            try:
                choice = response.json()["choices"][0]
                content = choice["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise BackendError(f"malformed chat completion from {self.url}: {response.text[:200]}") from e
            if not isinstance(content, str):
                raise BackendError(f"malformed chat completion from {self.url}: content is {type(content).__name__}")
            return Completion(content, truncated=choice.get("finish_reason") == "length")
        raise BackendError(f"{error} (after {self.retries + 1} attempts)")

    @property
    def spec(self) -> str:
        return f"http:{self.base_url}#{self.model}"
