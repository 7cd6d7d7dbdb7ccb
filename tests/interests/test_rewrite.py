"""The rewriters: the I-AM-G template, validation of LLM outputs, an OpenAI-compatible HTTP server
(a real one on 127.0.0.1) and the embedded SmolLM2 GGUF through transformers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tailorgen.interests.rewrite import (
    HTTPRewriter,
    LocalLLMRewriter,
    RewriteResult,
    TemplateRewriter,
    make_rewriter,
    normalize_vocabulary,
    validate_output,
    vocabulary_from_shop,
)
from tailorgen.interests.vocabulary import TagVocabulary

ITEM = "Northwind navy checked coat. Made from soft wool"
ITEM_TAGS = ["coat", "navy", "checks", "Northwind"]
USER_TAGS = ["vintage", "grey", "stripes"]
GOOD = "A navy checked wool coat by Northwind, a vintage piece for anyone who likes grey tones."


# --- template -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "item_tags", "user_tags", "expected"),
    [
        (
            "Navy coat",
            ["coat", "navy"],
            ["vintage", "grey"],
            "Navy coat. It is about coat, navy. Maybe related to vintage, grey.",
        ),
        # no double period; "!" and "?" also end a sentence
        ("Navy coat.", ["coat"], ["grey"], "Navy coat. It is about coat. Maybe related to grey."),
        ("Navy coat!", ["coat"], ["grey"], "Navy coat! It is about coat. Maybe related to grey."),
        # surrounding whitespace and a dangling comma are tidied
        ("  Navy coat,  ", ["coat"], ["grey"], "Navy coat. It is about coat. Maybe related to grey."),
        # an empty list drops its sentence
        ("Navy coat", [], ["grey"], "Navy coat. Maybe related to grey."),
        ("Navy coat", ["coat"], [], "Navy coat. It is about coat."),
        ("Navy coat", [], [], "Navy coat."),
        ("", ["coat"], ["grey"], "It is about coat. Maybe related to grey."),
        ("", [], [], ""),
        # blank and repeated tags are dropped, order kept
        (
            "Tee",
            ["tee", " ", "Tee", "red"],
            ["red", "", "blue"],
            "Tee. It is about tee, red. Maybe related to red, blue.",
        ),
    ],
)
def test_template_is_the_i_am_g_form(text, item_tags, user_tags, expected):
    result = TemplateRewriter().rewrite(text, item_tags, user_tags)
    assert result == RewriteResult(expected, "template", None, None)


def test_result_is_a_json_record():
    result = TemplateRewriter().rewrite("Navy coat", ["coat"], ["grey"])
    record = json.loads(json.dumps(result.to_dict()))
    assert record == {
        "text": "Navy coat. It is about coat. Maybe related to grey.",
        "backend": "template",
        "fallback_reason": None,
        "raw_output": None,
    }


# --- validation -----------------------------------------------------------------------------


def check(raw, vocabulary=None, truncated=False, **kwargs):
    vocabulary = vocabulary_from_shop() if vocabulary is None else vocabulary
    return validate_output(raw, ITEM, ITEM_TAGS, USER_TAGS, vocabulary=vocabulary, truncated=truncated, **kwargs)


def test_a_faithful_output_passes_cleaned():
    assert check(GOOD).text == GOOD
    assert check(f'  "Description: {GOOD}"\n').text == GOOD
    # synonyms of the item's values (plaid = checks, midnight = navy, jacket = coat) are fine
    assert check("A midnight plaid jacket by Northwind for vintage fans.").ok
    # American spelling of a requested colour
    assert check("A navy coat by Northwind with gray vintage charm.").ok


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty output"),
        ("   \n", "empty output"),
        (None, "empty output"),
        ("A navy coat.", "too short"),
        ("A navy checked coat by Northwind. " * 14, "too long"),
        ("Product: navy coat by Northwind, vintage.", "echoes the prompt"),
        ("You write short product descriptions for an online fashion shop.", "echoes the prompt"),
        ("A navy coat, a navy coat, a navy coat, a navy coat for all.", "repeats itself"),
    ],
)
def test_unusable_outputs_are_rejected(raw, reason):
    result = check(raw)
    assert not result.ok and result.text is None
    assert reason in result.reason


def test_max_and_min_chars_are_configurable():
    assert "too long" in check(GOOD, max_chars=40).reason
    assert "too short" in check(GOOD, min_chars=200, max_chars=400).reason


def test_out_of_vocabulary_colour_is_rejected():
    result = check("A magenta checked coat by Northwind for vintage lovers.")
    assert result.reason == "colour 'magenta' is not in the catalog's vocabulary"
    assert "'off-white' is not in the catalog's vocabulary" in check("An off-white coat by Northwind, vintage.").reason
    assert "pattern 'floral' is not" in check("A navy floral coat by Northwind, vintage.").reason


def test_a_catalog_colour_the_request_does_not_have_is_rejected():
    # red is a shop colour, but neither the item nor the user's interests are red: it would be painted wrong
    result = check("A red checked coat by Northwind for vintage lovers.")
    assert result.reason == "colour 'red' is neither the item's nor one of the user's interests"
    assert "cherry-red" in check("A navy coat by Northwind with cherry-red vintage trim.").reason
    # the user's interests may be woven in
    assert check("A navy coat by Northwind that suits your love of stripes.").ok


def test_a_contradicting_category_is_rejected_but_a_mention_is_not():
    result = check("A navy checked dress by Northwind for vintage lovers.")
    assert result.reason == "output calls the item a dress, but it is a coat"
    assert check("A navy checked coat by Northwind that pairs well with a dress.").ok


def test_the_item_category_and_colour_must_be_kept():
    # the user's grey painted over the item's navy: the generated image would be wrong
    result = check("A grey checked coat by Northwind for vintage lovers.")
    assert result.reason == "output does not keep the item's colour (navy)"
    assert check("A navy vintage piece by Northwind.").reason == "output does not keep the item's category (coat)"
    assert check("A navy vintage piece by Northwind.", required_attributes=()).ok
    # a synonym keeps the fact
    assert check("An ink-coloured overcoat by Northwind, vintage at heart.").ok


def test_a_flat_vocabulary_and_a_tag_vocabulary_also_work():
    flat = {"colour": ["navy", "grey", "red"]}
    assert "'magenta' is not in the catalog" in check("A magenta coat by Northwind, vintage.", vocabulary=flat).reason
    assert check(GOOD, vocabulary=flat).ok
    tags = TagVocabulary.from_shop()
    assert check("A cobalt coat for everyone", vocabulary=tags).reason.startswith("colour 'cobalt'")
    assert normalize_vocabulary(tags)["colour"]["navy"][:2] == ["navy", "midnight"]
    with pytest.raises(TypeError, match="not a string"):
        normalize_vocabulary({"colour": "red"})


def test_without_a_vocabulary_attributes_are_not_checked():
    assert validate_output("A magenta dress for everyone.", ITEM, ITEM_TAGS, USER_TAGS).ok


def test_a_truncated_output_keeps_only_whole_sentences():
    raw = f"{GOOD} It also goes with"
    assert check(raw, truncated=True).text == GOOD
    assert "cut off" in check("A navy checked coat by Northwind with", truncated=True).reason
    # an answer that ended on its own merely gets its final period
    assert check(GOOD.rstrip("."), truncated=False).text == GOOD


# --- HTTP backend against a real server -----------------------------------------------------


class ChatServer(ThreadingHTTPServer):
    """An OpenAI-compatible /v1/chat/completions endpoint that answers from a script."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.replies: list[tuple[int, str]] = []  # (status, assistant content) per request, in order
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        status, content = self.server.replies.pop(0) if self.server.replies else (500, "no reply scripted")
        if status == 200:
            payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
            payload["choices"][0]["finish_reason"] = "stop"
        else:
            payload = {"error": {"message": content}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def chat_server():
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def http_rewriter(server, **kwargs):
    return HTTPRewriter(server.url, "smol", vocabulary=vocabulary_from_shop(), backoff=0.0, **kwargs)


def test_http_good_answer_and_the_request_it_sent(chat_server):
    chat_server.replies = [(200, GOOD)]
    with http_rewriter(chat_server, api_key="secret", temperature=0.0, max_tokens=77) as rewriter:
        result = rewriter.rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert result == RewriteResult(GOOD, "http", None, GOOD)

    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer secret"
    body = request["body"]
    assert body["model"] == "smol"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 77
    roles = [m["role"] for m in body["messages"]]
    assert roles[0] == "system" and roles[-1] == "user"
    asked = body["messages"][-1]["content"]
    assert ITEM in asked
    assert all(tag in asked for tag in USER_TAGS + ITEM_TAGS)


def test_http_out_of_vocabulary_answer_falls_back_to_the_template(chat_server):
    bad = "A magenta checked coat by Northwind for vintage lovers."
    chat_server.replies = [(200, bad)]
    result = http_rewriter(chat_server).rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert result.backend == "template"
    assert result.text == TemplateRewriter().rewrite(ITEM, ITEM_TAGS, USER_TAGS).text
    assert result.fallback_reason == "http: colour 'magenta' is not in the catalog's vocabulary"
    assert result.raw_output == bad


def test_http_500_is_retried_then_falls_back_with_the_reason(chat_server):
    chat_server.replies = [(500, "overloaded")] * 3
    result = http_rewriter(chat_server, retries=2).rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert len(chat_server.requests) == 3
    assert result.backend == "template" and result.raw_output is None
    assert result.fallback_reason.startswith("http: HTTP 500 from ")
    assert "overloaded" in result.fallback_reason and "after 3 attempts" in result.fallback_reason


def test_http_recovers_when_a_retry_succeeds(chat_server):
    chat_server.replies = [(503, "busy"), (200, GOOD)]
    result = http_rewriter(chat_server, retries=1).rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert result.backend == "http" and result.text == GOOD


def test_http_client_error_is_not_retried(chat_server):
    chat_server.replies = [(401, "bad key")]
    result = http_rewriter(chat_server, retries=3).rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert len(chat_server.requests) == 1
    assert result.fallback_reason.startswith("http: HTTP 401")


def test_http_unreachable_server_falls_back():
    # a port nothing listens on: bind one, then close it
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    port = server.server_address[1]
    server.server_close()
    rewriter = HTTPRewriter(f"http://127.0.0.1:{port}/v1/", retries=1, backoff=0.0, timeout=2.0)
    assert rewriter.url == f"http://127.0.0.1:{port}/v1/chat/completions"
    result = rewriter.rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert result.backend == "template"
    assert "ConnectError" in result.fallback_reason and "after 2 attempts" in result.fallback_reason


def test_http_api_key_from_the_environment(chat_server, monkeypatch):
    monkeypatch.setenv("TAILORGEN_LLM_API_KEY", "from-env")
    chat_server.replies = [(200, GOOD)]
    http_rewriter(chat_server).rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert chat_server.requests[0]["auth"] == "Bearer from-env"


# --- factory --------------------------------------------------------------------------------


def test_make_rewriter_specs():
    assert isinstance(make_rewriter("template"), TemplateRewriter)
    local = make_rewriter("local-llm", vocabulary=vocabulary_from_shop())
    assert isinstance(local, LocalLLMRewriter) and local.spec == "local-llm" and local.vocabulary
    assert make_rewriter("local-llm:/models/x.gguf").spec == "local-llm:/models/x.gguf"
    http = make_rewriter("http:http://127.0.0.1:8000/v1#qwen", timeout=5.0)
    assert isinstance(http, HTTPRewriter)
    assert (http.base_url, http.model, http.timeout) == ("http://127.0.0.1:8000", "qwen", 5.0)
    assert make_rewriter(http.spec).spec == http.spec
    assert make_rewriter("https://llm.example.org").spec == "http:https://llm.example.org#default"
    with pytest.raises(ValueError, match="unknown rewriter spec"):
        make_rewriter("gpt")
    with pytest.raises(TypeError, match="takes no options"):
        make_rewriter("template", timeout=3)
    with pytest.raises(ValueError, match="min_chars"):
        HTTPRewriter("http://x", min_chars=50, max_chars=10)


# --- local LLM: a tiny random-weight model through the real loading code ---------------------

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory):
    """A 1-layer Llama with a word-level tokenizer and a chat template, saved like a real model folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-llm")
    words = ["navy", "coat", "by", "northwind", "vintage", "grey", "a", "the", "for", "and", "with", ".", ","]
    vocab = {w: i for i, w in enumerate(["<unk>", "<|im_start|>", "<|im_end|>", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(d))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(str(d))
    return d


def test_local_llm_loads_a_model_folder_and_falls_back_on_gibberish(tiny_llm_dir):
    rewriter = make_rewriter(f"local-llm:{tiny_llm_dir}", vocabulary=vocabulary_from_shop(), max_new_tokens=8)
    first = rewriter.rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    assert first == rewriter.rewrite(ITEM, ITEM_TAGS, USER_TAGS)  # greedy: reproducible
    assert first.raw_output  # the model answered ...
    assert first.backend == "template" and first.fallback_reason.startswith("local-llm: ")  # ... badly
    assert first.text == TemplateRewriter().rewrite(ITEM, ITEM_TAGS, USER_TAGS).text


def test_local_llm_clear_errors(tmp_path, tiny_llm_dir):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        LocalLLMRewriter(tmp_path / "missing").rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    with pytest.raises(FileNotFoundError, match="GGUF model file not found"):
        LocalLLMRewriter(tmp_path / "missing.gguf").rewrite(ITEM, ITEM_TAGS, USER_TAGS)
    with pytest.raises(ValueError, match="max_new_tokens"):
        LocalLLMRewriter(max_new_tokens=0)
    # a base model without a chat template cannot be prompted as a chat
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_llm_dir, base)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    (base / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="no chat template"):
        LocalLLMRewriter(base).rewrite(ITEM, ITEM_TAGS, USER_TAGS)


# --- the embedded SmolLM2 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    """The real SmolLM2-135M-Instruct GGUF, loaded once for this module."""
    rewriter = LocalLLMRewriter(vocabulary=vocabulary_from_shop())
    start = time.perf_counter()
    rewriter.load()
    print(f"\nSmolLM2 GGUF load: {time.perf_counter() - start:.1f}s")
    return rewriter


@pytest.mark.slow
def test_local_llm_rewrites_deterministically(smollm2):
    item = "Kobaltz blue striped sneakers. Made from soft mesh with a slim fit"
    item_tags = ["sneaker", "blue", "stripes", "Kobaltz"]
    user_tags = ["sporty", "black", "stripes"]

    timings = []
    results = []
    for _ in range(2):
        start = time.perf_counter()
        results.append(smollm2.rewrite(item, item_tags, user_tags))
        timings.append(time.perf_counter() - start)
    print(f"SmolLM2 rewrite: {timings[0]:.1f}s, {timings[1]:.1f}s; result: {results[0]}")

    first, second = results
    assert first == second, "greedy decoding must give the same rewrite for the same input"
    assert first.raw_output, "the model said nothing"
    if first.backend == "local-llm":
        assert first.fallback_reason is None
        assert validate_output(
            first.text, item, item_tags, user_tags, vocabulary=vocabulary_from_shop(), max_chars=smollm2.max_chars
        ).ok
    else:
        assert first.backend == "template"
        assert first.fallback_reason.startswith("local-llm: ")
        assert first.text == TemplateRewriter().rewrite(item, item_tags, user_tags).text
