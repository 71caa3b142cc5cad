"""The Gradio page of ``cmmkit demo``, built only from what the runs' pair and modalities declare
(:mod:`cmmkit.demo.spec`); every model call goes through :class:`cmmkit.demo.engine.DemoRuns`.

Tabs: **Generate** (y's controls -> each run's x) and, when x can be uploaded and a run edits,
**Edit** (upload or pick an x; its condition, known or inferred, fills the controls; changing them
shows each run's edit beside the unchanged reconstruction, §4.5). Besides the page's own events,
four endpoints take plain values for ``gradio_client``: ``/generate``, ``/infer``, ``/edit`` and
``/example`` (conditions as JSON text).
"""

from __future__ import annotations

import functools
import html
import json
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from cmmkit.demo.engine import DemoError, DemoRuns, RunResult, describe
from cmmkit.demo.files import OutputFiles
from cmmkit.demo.spec import Choice, Control, Slider, Text, View
from cmmkit.errors import CmmkitError

log = logging.getLogger(__name__)
GROUP = "model"  # the one concurrency group of every event that calls a model
#: small outputs (64x64 faces) are shown enlarged with sharp pixels; downloads keep their own size
CSS = ".cmmkit-view img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }"


def Upload(**kwargs: Any) -> gr.Image:  # named like the component it makes
    """A gr.Image whose upload reaches the handler as the file's path, unopened, so that the demo
    refuses a file that is not an image, or a huge one, with its own message (gr.Image itself
    would fail inside PIL). An instance attribute, not a subclass: gradio writes a ``.pyi`` stub
    beside the source of every component subclass."""
    image = gr.Image(type="filepath", **kwargs)
    decode = image.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        try:
            return decode(payload)
        except Exception:  # any decoding failure is the same message to the user
            raise gr.Error("the upload is not an image (PNG, JPEG, PPM, ... expected)", print_exception=False) from None

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def guarded(fn: Callable[..., Any], outputs: int | None = None) -> Callable[..., Any]:
    """Errors become a message: cmmkit's own as they are, anything else as a short note (the
    traceback goes to the server's log, never to the browser). Endpoints (``outputs`` None) raise
    it as gr.Error, which gradio_client reports; the page's own events (``outputs`` = how many)
    show it as a warning and leave every output as it was, instead of marking each one "Error"."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            raise
        except CmmkitError as exc:
            message = html.escape(str(exc), quote=False)
        except Exception as exc:
            log.exception("demo request failed")
            message = f"internal error ({type(exc).__name__}); the server's log has the details"
        if outputs is None:
            raise gr.Error(message, print_exception=False)
        gr.Warning(message)
        return [gr.skip()] * outputs

    return wrapper


def _control(c: Control, elem_id: str) -> Any:
    if isinstance(c, Slider):
        return gr.Slider(c.minimum, c.maximum, value=_shown(c.value), step=c.step, label=c.name, min_width=160,
                         elem_id=elem_id)
    if isinstance(c, Choice):
        return gr.Dropdown(list(c.choices), value=c.value, label=c.label or c.name, filterable=True, elem_id=elem_id)
    assert isinstance(c, Text)
    return gr.Textbox(c.value, label=c.label or c.name, lines=c.lines, elem_id=elem_id)


def controls(demo: DemoRuns, prefix: str) -> dict[str, Any]:
    """y's controls in the pair's groups (first group open), the ungrouped ones last; HTML ids
    ``{prefix}-ctl-{index in y's order}``."""
    specs = {c.name: c for c in demo.y_spec.controls}
    groups = {t: [n for n in names if n in specs] for t, names in demo.pair_spec.groups.items()}
    grouped = {n for names in groups.values() for n in names}
    rest = [n for n in specs if n not in grouped]
    if rest:
        groups["other" if grouped else "condition"] = rest
    out: dict[str, Any] = {}
    for i, (title, names) in enumerate(g for g in groups.items() if g[1]):
        with gr.Accordion(title, open=i == 0 or not grouped, elem_id=f"{prefix}-group-{i}"):
            with gr.Row(equal_height=False):
                for name in names:
                    out[name] = _control(specs[name], f"{prefix}-ctl-{list(specs).index(name)}")
    return out


def _view(view: View, label: str, elem_id: str) -> Any:
    if view.kind == "image":
        return gr.Image(type="pil", format="png", label=label, buttons=["download"], height=256, elem_id=elem_id,
                        elem_classes=["cmmkit-view"])
    if view.kind == "audio":
        return gr.Audio(type="numpy", label=label, buttons=["download"], elem_id=elem_id)
    return gr.Textbox(label=label, lines=2, buttons=["copy"], elem_id=elem_id)


def _render(views: tuple[View, ...], value: Any, files: OutputFiles) -> list[Any]:
    """What each view's widget gets: images and audio as files (see :mod:`cmmkit.demo.files`)."""
    out = []
    for v in views:
        shown = None if value is None else v.render(value)
        if shown is not None and v.kind in ("image", "audio"):
            shown = files.image(shown) if v.kind == "image" else files.audio(shown)
        out.append(shown)
    return out


def _alternatives(res: RunResult) -> str:
    """The distinct sampled outputs, one a line, or why there are none to show."""
    distinct = list(dict.fromkeys(str(a) for a in res.alternatives))
    if distinct == [str(o) for o in res.outputs[:1]]:
        return "(every sample equals the output above: this model has no latent to sample, or ignores it)"
    return "\n".join(distinct)


def _notes(results: list[RunResult], demo: DemoRuns) -> str:
    return "\n".join(f"- **{describe(r)}**: {html.escape(res.note)}" for r, res in zip(demo.runs, results) if res.note)


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text and text.strip() else {}
    except json.JSONDecodeError as exc:
        raise DemoError(f"{what}: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise DemoError(f"{what}: expected a JSON object such as {{\"Male\": 1}}")
    return value


def build(demo: DemoRuns, files: OutputFiles, concurrency: int = 1) -> gr.Blocks:
    """The page for ``demo``, writing its outputs to ``files``; model events share one concurrency
    group of ``concurrency`` slots."""
    x, y = demo.x_spec, demo.y_spec
    limits = {"concurrency_id": GROUP, "concurrency_limit": concurrency}
    private = {**limits, "api_visibility": "private"}
    order = [c.name for c in y.controls]
    with gr.Blocks(title=f"cmmkit demo: {demo.pair.name}", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as page:
        gr.Markdown(f"## cmmkit demo: {demo.pair.name}\n{html.escape(demo.pair.description)}\n\n"
                    + "\n".join(f"- panel {i + 1}: **{describe(r)}**, `{r.path}`" for i, r in enumerate(demo.runs))
                    + "".join(f"\n\n_{html.escape(n)}_" for n in demo.notes))

        # --- generate ------------------------------------------------------------------
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=2):
                    with gr.Row():
                        noise = gr.Slider(0, 3, value=0, step=0.05,
                                          label="latent noise (0: the means, as in the paper)")
                        seed = gr.Number(0, precision=0, label="seed", minimum=0)
                    base = gr.Radio(list(y.bases), value=y.bases[0], label="unset values come from the base") \
                        if y.bases else gr.State(None)
                    given_md = gr.Markdown("Nothing set yet: every value is the base." if y.bases else "",
                                           elem_id="gen-given")
                    with gr.Row():
                        go = gr.Button("generate", variant="primary")
                        reset = gr.Button("reset") if y.bases else None
                    inputs = controls(demo, "gen")
                with gr.Column(scale=3):
                    gen_out: list[Any] = []
                    for i, run in enumerate(demo.runs):
                        with gr.Group():
                            gr.Markdown(f"**panel {i + 1}: {describe(run)}**")
                            gen_out += [_view(v, f"{v.label}: {describe(run)}", f"gen-{i}-{j}")
                                        for j, v in enumerate(x.views)]
                            if x.alternatives:
                                gen_out.append(gr.Textbox(label=f"sampled alternatives: {describe(run)}", lines=3,
                                                          elem_id=f"gen-{i}-alternatives"))
                    gen_status = gr.Markdown(elem_id="gen-notes")
        given = gr.State({})
        widgets = [inputs[n] for n in order]

        def outputs_of(results: list[RunResult]) -> list[Any]:
            out: list[Any] = []
            for res in results:
                out += _render(x.views, res.outputs[0] if res.outputs else None, files)
                if x.alternatives:
                    out.append(_alternatives(res))
            return out + [_notes(results, demo)]

        def given_text(values: dict[str, Any]) -> str:
            if not values:
                return "Nothing set yet: every value is the base."
            text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
            return f"Set by you: {text}; the rest come from the base." if y.bases else f"Condition: {text}."

        def run_ui(values: dict[str, Any], base_v: Any, noise_v: float, seed_v: Any) -> list[Any]:
            shown = demo.fill(values, base_v)
            return [values, given_text(values), *[_shown(shown.get(n)) for n in order],
                    *outputs_of(demo.generate(values, noise_v, seed_v, base_v))]

        ui_out = [given, given_md, *widgets, *gen_out, gen_status]

        def changed(name: str) -> Callable[..., Any]:
            def fn(values: dict[str, Any], base_v: Any, noise_v: float, seed_v: Any, *current: Any) -> list[Any]:
                if not y.bases:  # every control is part of the condition
                    return run_ui(dict(zip(order, current)), base_v, noise_v, seed_v)
                return run_ui({**values, name: current[order.index(name)]}, base_v, noise_v, seed_v)
            return guarded(fn, len(ui_out))

        def again(values: dict[str, Any], base_v: Any, noise_v: float, seed_v: Any, *current: Any) -> list[Any]:
            return run_ui(values if y.bases else dict(zip(order, current)), base_v, noise_v, seed_v)

        ui_in = [given, base, noise, seed, *widgets]
        for name, widget in inputs.items():
            event = widget.release if isinstance(widget, gr.Slider) else \
                widget.submit if isinstance(widget, gr.Textbox) else widget.input
            event(changed(name), ui_in, ui_out, **private)
        go.click(guarded(again, len(ui_out)), ui_in, ui_out, **private)
        page.load(guarded(again, len(ui_out)), ui_in, ui_out, **private)  # the base's output at once
        noise.release(guarded(again, len(ui_out)), ui_in, ui_out, **private)
        seed.submit(guarded(again, len(ui_out)), ui_in, ui_out, **private)
        if y.bases:
            base.input(guarded(again, len(ui_out)), ui_in, ui_out, **private)
            reset.click(guarded(lambda b, n, s: run_ui({}, b, n, s), len(ui_out)), [base, noise, seed], ui_out,
                        **private)

        # --- edit --------------------------------------------------------------------------
        if demo.can_edit:
            _edit_tab(demo, files, order, seed, limits, private)

        # --- endpoints for gradio_client ------------------------------------------------
        with gr.Row(visible=False):
            condition_json = gr.Textbox()
            api_base = gr.Textbox()
            api_go = gr.Button()

        @guarded
        def api_generate(cond: str, noise_v: float, seed_v: Any, base_v: str) -> list[Any]:
            """Each run's output for a condition given as JSON (e.g. {"Male": 1}; a speech or text
            pair: {"text": ..., "speaker": ...}); latent noise; seed; base ("" for the default)."""
            return outputs_of(demo.generate(_parse(cond, "condition"), noise_v, seed_v, base_v or None))

        api_go.click(api_generate, [condition_json, noise, seed, api_base], [*gen_out, gen_status],
                     api_name="generate", **limits)
    return page


def _edit_tab(demo: DemoRuns, files: OutputFiles, order: list[str], seed: Any, limits: dict[str, Any],
              private: dict[str, Any]) -> None:
    x = demo.x_spec
    model_x = demo.runs[0].x
    with gr.Tab("Edit"):
        with gr.Row():
            with gr.Column(scale=2):
                upload = Upload(sources=["upload"], label="upload an image", height=200, elem_id="edit-upload")
                labels = sorted(demo.examples)
                pick = gr.Dropdown(labels, value=None, label=f"or pick one of {len(labels)} test examples",
                                   filterable=True, elem_id="edit-pick") if labels else None
                source = gr.Markdown("Upload an image or pick an example; its condition fills the controls below.",
                                     elem_id="edit-source")
                back = gr.Button("back to the original")
                inputs = controls(demo, "edit")
            with gr.Column(scale=3):
                seen = gr.Image(type="pil", format="png", label="input, as the model sees it", height=200,
                                elem_id="edit-input", elem_classes=["cmmkit-view"])
                edit_out: list[Any] = []
                for i, run in enumerate(demo.runs):
                    with gr.Group():
                        gr.Markdown(f"**panel {i + 1}: {describe(run)}**")
                        with gr.Row():
                            for kind in ("unchanged", "edited"):
                                edit_out += [_view(v, f"{kind}: {describe(run)}", f"edit-{i}-{kind}-{j}")
                                             for j, v in enumerate(x.views)]
                edit_status = gr.Markdown(elem_id="edit-notes")
    item, original = gr.State(None), gr.State({})
    widgets = [inputs[n] for n in order]

    def as_seen(value: Any) -> Any:
        return files.image(model_x.to_user(model_x.prepare(model_x.from_user([value]), dequantize=False))[0])

    def edited(value: Any, orig: dict[str, Any], changes: dict[str, Any], seed_v: Any) -> list[Any]:
        results = demo.edit(value, orig, changes, seed_v)
        out: list[Any] = []
        for res in results:
            for v in res.outputs:
                out += _render(x.views, v, files)
        return out + [_notes(results, demo)]

    def start(value: Any, orig: dict[str, Any], how: str, seed_v: Any) -> list[Any]:
        return [value, orig, f"Condition: {html.escape(how)}.", *[_shown(orig.get(n)) for n in order], as_seen(value),
                *edited(value, orig, {}, seed_v)]

    start_out = [item, original, source, *widgets, seen, *edit_out, edit_status]

    def on_upload(path: str | None, seed_v: Any) -> list[Any]:
        value, orig, how = demo.original(demo.read_upload(path) if path else None)
        return start(value, orig, how, seed_v)

    def on_pick(label: str | None, seed_v: Any) -> list[Any]:
        value, orig, how = demo.original(None, label)
        return start(value, orig, how, seed_v)

    def on_change(value: Any, orig: dict[str, Any], seed_v: Any, *current: Any) -> list[Any]:
        if value is None:
            raise DemoError("upload an image or pick an example first")
        changes = {n: v for n, v in zip(order, current) if _differs(v, orig.get(n))}
        return edited(value, orig, changes, seed_v)

    upload.upload(guarded(on_upload, len(start_out)), [upload, seed], start_out, **private)
    if pick is not None:
        pick.input(guarded(on_pick, len(start_out)), [pick, seed], start_out, **private)
    change_in, change_out = [item, original, seed, *widgets], [*edit_out, edit_status]
    for widget in widgets:
        event = widget.release if isinstance(widget, gr.Slider) else \
            widget.submit if isinstance(widget, gr.Textbox) else widget.input
        event(guarded(on_change, len(change_out)), change_in, change_out, **private)
    def on_back(value: Any, orig: dict[str, Any], seed_v: Any) -> list[Any]:
        if value is None:
            raise DemoError("upload an image or pick an example first")
        return start(value, orig, "back to the original", seed_v)

    back.click(guarded(on_back, len(start_out)), [item, original, seed], start_out, **private)

    with gr.Row(visible=False):
        api_image, changes_json, original_json, label_box = Upload(), gr.Textbox(), gr.Textbox(), gr.Textbox()
        api_edit, api_infer, api_example = gr.Button(), gr.Button(), gr.Button()
        cond_out, how_out = gr.Textbox(), gr.Textbox()

    @guarded
    def api_infer_fn(path: str | None) -> list[Any]:
        """The condition of an uploaded x as JSON (known to the pair, else inferred) and its source."""
        _, orig, how = demo.original(demo.read_upload(path) if path else None)
        return [json.dumps(orig), how]

    @guarded
    def api_example_fn(label: str) -> list[Any]:
        """A test example by label: (x as the model sees it, its condition as JSON, the source)."""
        value, orig, how = demo.original(None, label)
        return [as_seen(value), json.dumps(orig), how]

    @guarded
    def api_edit_fn(path: str | None, changes: str, orig: str, seed_v: Any) -> list[Any]:
        """Each run's (unchanged, edited) x for an uploaded x, changes as JSON, and its condition as
        JSON ("" to use the known or inferred one); then the condition used as JSON."""
        value = demo.read_upload(path) if path else None
        given = _parse(orig, "original condition")
        if not given:
            value, given, _ = demo.original(value)
        if value is None:
            raise DemoError("no image given")
        return [as_seen(value), *edited(value, given, _parse(changes, "changes"), seed_v), json.dumps(given)]

    api_infer.click(api_infer_fn, [api_image], [cond_out, how_out], api_name="infer", **limits)
    api_example.click(api_example_fn, [label_box], [seen, cond_out, how_out], api_name="example", **limits)
    api_edit.click(api_edit_fn, [api_image, changes_json, original_json, seed],
                   [seen, *edit_out, edit_status, cond_out],
                   api_name="edit", **limits)


def _shown(value: Any) -> Any:
    """A control's value as shown: numbers to 3 decimals (-4e-07 would read as -4)."""
    return round(value, 3) if isinstance(value, float) else value


def _differs(a: Any, b: Any) -> bool:
    """Whether a control was changed (numbers: by more than their shown rounding)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) > 1e-3
    return a != b
