// The new-video page: plan, then render.
//
// Prompt, duration and model first. "Plan" asks the server for its plan (POST /api/estimate/: the same
// planner and prices as the API and the CLI) and shows the segments as cards. The person edits,
// reorders (drag, Move buttons, Alt+Arrow keys), adds, removes, splits and merges cards (the card
// editor in cards.js, shared with a saved draft's page); the duration follows the cards and the server
// prices the cards again after every change (debounced). The cards are sent as manual segments, so what
// the person sees is what renders. "Save draft" stores the job without rendering (it stays in the list);
// "Render" stores and starts it.

import { $, $$, api, errorText, formatMoney, jobUrl, plural, readConfig } from "./common.js";
import {
  checkImage,
  createCardEditor,
  createEstimator,
  planSummary,
  uploadCardImages,
} from "./cards.js";

// Which element shows the messages of an API field (DRF names; nested ones are dotted).
const FIELD_TARGETS = {
  title: "title",
  prompt: "prompt",
  duration_seconds: "duration_seconds",
  segment_seconds: "duration_seconds",
  strategy: "strategy",
  segmentation_mode: "strategy",
  segments: "segments",
  continuity: "continuity",
  provider: "provider",
  model: "model",
  size: "size",
  image: "image",
  reference_image: "image",
  segment_index: "image",
  non_field_errors: "non_field_errors",
};
const FIELD_LABELS = {
  title: "Title",
  prompt: "Prompt",
  duration_seconds: "Duration",
  segment_seconds: "Segment length",
  strategy: "Split the prompt by",
  segmentation_mode: "Segmentation",
  segments: "Cards",
  continuity: "Continuity",
  provider: "Provider",
  model: "Model",
  size: "Size",
  image: "Reference image",
  reference_image: "Reference image",
  segment_index: "Reference image",
  fps: "Frame rate",
};
const FIELD_INPUTS = {
  title: "id_title",
  prompt: "id_prompt",
  duration_seconds: "id_duration",
  strategy: "id_strategy",
  continuity: "id_continuity",
  provider: "id_provider",
  model: "id_model",
  size: "id_size",
  image: "id_reference",
};

function initNewJob(config) {
  const form = $("#new-job-form");
  const slider = $("#id_duration");
  const providerSelect = $("#id_provider");
  const modelSelect = $("#id_model");
  const sizeSelect = $("#id_size");
  const continuitySelect = $("#id_continuity");
  const fileInput = $("#id_reference");
  const previewBox = $("#reference-preview-box");
  const preview = $("#reference-preview");
  const submit = $("#submit-job");
  const saveDraft = $("#save-draft");
  const status = $("#form-status");
  const summary = $("#form-errors");
  const list = $("#cards");
  const providers = new Map(config.providers.map((p) => [p.name, p]));
  const segmentSeconds = config.segment_seconds;
  const maxCards = Math.max(1, Math.floor(config.duration.max / segmentSeconds));

  let image = { file: null, valid: true, message: "" };
  let previewUrl = null;

  function announce(text) {
    status.textContent = text;
  }

  // The cards, in order (cards.js): the page follows each change with the duration and the estimate.
  const editor = createCardEditor({
    list,
    template: $("#card-template"),
    maxCards,
    hintId: "storyboard-hint",
    uploadMaxBytes: config.upload_max_bytes,
    announce,
    onChange: changed,
    onRender: () => {
      $("#add-card").disabled = editor.cards.length >= maxCards;
      $("#storyboard").hidden = !planned();
      $("#strategy-field").hidden = planned();
      syncDuration();
    },
    onErrorCleared: () => pruneSummary(),
  });
  const planned = () => editor.cards.length > 0;

  // --- menus

  function fillSelect(select, values, preferred) {
    const previous = select.value;
    select.replaceChildren(...values.map((value) => new Option(value, value)));
    const pick = [previous, preferred].find((v) => v && values.includes(v));
    select.value = pick || values[0] || "";
  }

  function syncModels() {
    const provider = providers.get(providerSelect.value);
    fillSelect(modelSelect, provider.models.map((m) => m.id), provider.default_model);
    for (const option of modelSelect.options) {
      const model = provider.models.find((m) => m.id === option.value);
      if (model && model.label !== model.id) option.textContent = `${model.label} (${model.id})`;
    }
    syncSizes();
  }

  function syncSizes() {
    const provider = providers.get(providerSelect.value);
    const model = provider.models.find((m) => m.id === modelSelect.value) || provider.models[0];
    fillSelect(sizeSelect, model.sizes, config.default_size);
    changed();
  }

  function syncContinuityHint() {
    $("#continuity-hint").textContent = config.continuity_hints[continuitySelect.value] || "";
  }

  const strategySelect = $("#id_strategy");
  const syncStrategyHint = () => {
    const option = strategySelect.selectedOptions[0];
    $("#strategy-hint").textContent = option ? option.dataset.description : "";
  };

  // --- the duration: the slider before planning, the cards after

  function durationSeconds() {
    return planned() ? editor.cards.length * segmentSeconds : Number(slider.value);
  }

  function syncDuration() {
    const seconds = durationSeconds();
    const count = planned() ? editor.cards.length : Math.max(1, Math.round(seconds / segmentSeconds));
    if (planned()) slider.value = String(seconds);
    slider.disabled = planned();
    $("#duration-follows").hidden = !planned();
    $("#duration-value").textContent = `${seconds} s`;
    $("#segment-count").textContent = plural(count, planned() ? "card" : "segment");
    slider.setAttribute("aria-valuetext", `${seconds} seconds, ${plural(count, "segment")}`);
  }

  // --- the server's estimate (and, once planned, the cards' time ranges)

  function changed() {
    syncDuration();
    estimator.schedule();
  }

  function estimateBody() {
    const body = payload(false);
    delete body.render;
    delete body.title;
    if (body.segments) {
      body.segments = body.segments.map((s, i) => ({ prompt: s.prompt.trim() || `Card ${i + 1}` }));
    }
    if (!body.prompt.trim()) body.prompt = body.segments ? body.segments.map((s) => s.prompt).join(" ") : "(your prompt)";
    return body;
  }

  const estimator = createEstimator({
    url: config.api.estimate,
    body: estimateBody,
    element: form,
    onResult: (result) => {
      if (!result.ok) {
        $("#cost-estimate").textContent = "—";
        $("#cost-detail").textContent = errorText(result);
        $("#cards-cost").textContent = "—";
        $("#cards-cost-detail").textContent = errorText(result);
        return;
      }
      showPlan(result.data);
    },
  });

  function showPlan(plan) {
    const text = planSummary(plan);
    $("#cost-estimate").textContent = formatMoney(Number(plan.cost_usd));
    $("#cost-detail").textContent = text;
    // The same figures under the cards, where the person is editing (the side panel is the live one).
    $("#cards-cost").textContent = formatMoney(Number(plan.cost_usd));
    $("#cards-cost-detail").textContent = text;
    if (!planned()) {
      $("#segment-count").textContent = plural(plan.segments.length, "segment");
      return;
    }
    editor.showTimes(plan);
  }

  async function plan() {
    clearErrors();
    if (!$("#id_prompt").value.trim()) {
      showErrors({ prompt: ["Describe the video you want, then plan it."] });
      return;
    }
    busy(true, "Planning…");
    const body = payload(false, { auto: true });
    delete body.render;
    delete body.title;
    const result = await api("POST", config.api.estimate, body);
    busy(false);
    if (!result.ok) {
      showApiError(result);
      return;
    }
    editor.fill(result.data.segments.map((s) => ({ prompt: s.prompt })));
    showPlan(result.data);
    announce(`Planned ${plural(editor.cards.length, "card")}. Edit them, then save a draft or render.`);
    editor.promptOf(editor.cards[0]).focus();
    changed();
  }

  // --- errors

  function errorElement(field) {
    const card = /^segments\.(\d+)/.exec(field);
    const cards = editor.cards;
    if (card && cards[Number(card[1])]) return editor.errorOf(cards[Number(card[1])]);
    const target = FIELD_TARGETS[field];
    return target ? document.getElementById(`error-${target}`) : null;
  }

  function inputFor(field) {
    const card = /^segments\.(\d+)/.exec(field);
    const cards = editor.cards;
    if (card && cards[Number(card[1])]) return editor.promptOf(cards[Number(card[1])]);
    if (field === "segments") return cards.length ? editor.promptOf(cards[0]) : slider;
    return document.getElementById(FIELD_INPUTS[FIELD_TARGETS[field]] || "");
  }

  function label(field) {
    const card = /^segments\.(\d+)/.exec(field);
    if (card) return `Card ${Number(card[1]) + 1}`;
    if (field === "non_field_errors") return "";
    return FIELD_LABELS[field] || field;
  }

  function clearErrors() {
    summary.hidden = true;
    summary.replaceChildren();
    $$(".field-error", form).forEach((element) => {
      element.hidden = true;
      element.textContent = "";
    });
    $$("[aria-invalid]", form).forEach((element) => element.removeAttribute("aria-invalid"));
  }

  // A fixed field's message goes at once, beside the field and in the summary.
  function clearFieldError(field) {
    const element = errorElement(field);
    if (element) {
      element.hidden = true;
      element.textContent = "";
    }
    const input = inputFor(field);
    if (input) input.removeAttribute("aria-invalid");
    pruneSummary();
  }

  function pruneSummary() {
    $$("li[data-field]", summary).forEach((item) => {
      const element = errorElement(item.dataset.field);
      if (!element || element.hidden) item.remove();
    });
    if (!$("li", summary)) {
      summary.hidden = true;
      summary.replaceChildren();
    }
  }

  function showFieldError(field, messages) {
    const element = errorElement(field);
    const input = inputFor(field);
    if (input) input.setAttribute("aria-invalid", "true");
    if (!element) return;
    element.textContent = messages.join(" ");
    element.hidden = false;
  }

  function showErrors(errors, headline = "Please fix the following:") {
    const items = [];
    for (const [name, messages] of Object.entries(errors)) {
      // A multipart create files a refused image under its part: reference_image.0, .1, ...
      const field = name.replace(/^reference_image\.\d+$/, "reference_image");
      showFieldError(field, messages);
      const input = inputFor(field);
      const item = document.createElement("li");
      item.dataset.field = field;
      const text = label(field) ? `${label(field)}: ${messages.join(" ")}` : messages.join(" ");
      if (input && input.id) {
        const link = document.createElement("a");
        link.href = `#${input.id}`;
        link.textContent = text;
        item.append(link);
      } else {
        item.textContent = text;
      }
      items.push(item);
    }
    const heading = document.createElement("p");
    heading.textContent = headline;
    const ul = document.createElement("ul");
    ul.append(...items);
    summary.replaceChildren(heading, ul);
    summary.hidden = false;
    summary.focus();
  }

  function showApiError(result, fallbackField = "non_field_errors") {
    const data = result.data || {};
    if (result.status === 400 && data.errors) {
      showErrors(data.errors);
    } else {
      showErrors({ [fallbackField]: [errorText(result)] }, "Could not save the video:");
    }
  }

  function localErrors() {
    const errors = {};
    if (!$("#id_prompt").value.trim() && !planned()) errors.prompt = ["Describe the video you want."];
    editor.cards.forEach((card, index) => {
      if (!card.prompt.trim()) errors[`segments.${index}.prompt`] = [`Card ${index + 1} needs a prompt.`];
    });
    if (image.file && !image.valid) errors.image = [image.message];
    if (continuitySelect.value === "reference" && !image.file) {
      errors.continuity = ["Reference continuity needs a reference image for the whole video: choose one below."];
    }
    return errors;
  }

  // --- the whole video's reference image

  function resetImage() {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    image = { file: null, valid: true, message: "" };
    preview.removeAttribute("src");
    previewBox.hidden = true;
    clearFieldError("image");
  }

  function rejectImage(file, message) {
    image = { file, valid: false, message };
    preview.hidden = true;
    previewBox.hidden = false; // keeps "Remove image" reachable
    showFieldError("image", [message]);
  }

  async function onFileChosen() {
    const file = fileInput.files[0];
    resetImage();
    if (!file) return;
    const problem = await checkImage(file, config.upload_max_bytes);
    if (problem) {
      rejectImage(file, problem);
      return;
    }
    image = { file, valid: true, message: "" };
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    previewBox.hidden = false;
    if (continuitySelect.value === "reference") clearFieldError("continuity");
  }

  // --- submit

  function busy(on, message = "") {
    for (const button of [submit, saveDraft, $("#plan-button")]) button.disabled = on;
    form.setAttribute("aria-busy", on ? "true" : "false");
    status.textContent = message;
  }

  function payload(render, { auto = false } = {}) {
    const body = {
      title: $("#id_title").value.trim(),
      prompt: $("#id_prompt").value,
      duration_seconds: auto || !planned() ? Number(slider.value) : durationSeconds(),
      segment_seconds: segmentSeconds,
      continuity: continuitySelect.value,
      provider: providerSelect.value,
      model: modelSelect.value,
      size: sizeSelect.value,
      render,
    };
    if (planned() && !auto) {
      body.segmentation_mode = "manual";
      body.segments = editor.cards.map((card) => ({ prompt: card.prompt }));
      // The prompt is the story's shared subject; a blank one is made from the cards.
      if (!body.prompt.trim()) body.prompt = body.segments.map((c) => c.prompt).join(" ");
    } else {
      body.segmentation_mode = "auto";
      body.strategy = strategySelect.value;
    }
    return body;
  }

  async function save(render) {
    clearErrors();
    const errors = localErrors();
    if (Object.keys(errors).length) {
      showErrors(errors);
      return;
    }
    // Card images are attached to the stored draft, then the render starts: the create request only
    // carries the image for the whole video.
    const renderNow = render && !editor.cards.some((card) => card.image);
    busy(true, render ? "Saving and starting the render…" : "Saving the draft…");
    let body = payload(renderNow);
    if (image.file) {
      body = new FormData();
      body.append("job", JSON.stringify(payload(renderNow)));
      body.append("reference_image", image.file);
    }
    const created = await api("POST", config.api.jobs, body);
    if (!created.ok) {
      busy(false);
      showApiError(created, image.file ? "image" : "non_field_errors");
      return;
    }
    const job = created.data;
    const page = jobUrl(config.api.job_page, job.id);
    const refused = await uploadCardImages(editor.cards, jobUrl(config.api.reference_images, job.id));
    if (refused) {
      busy(false);
      showErrors(
        { [`segments.${refused.index}`]: [errorText(refused.result)] },
        "The draft is saved, but a card's image was refused:",
      );
      status.textContent = "";
      const link = document.createElement("a");
      link.href = page;
      link.textContent = "Open the saved draft";
      status.append(link);
      return;
    }
    if (render && !renderNow) {
      const started = await api("POST", jobUrl(config.api.render, job.id));
      if (!started.ok) {
        busy(false);
        showErrors({ non_field_errors: [errorText(started)] }, "The draft is saved, but it could not start:");
        return;
      }
    }
    busy(true, "Opening the job…");
    window.location.assign(page);
  }

  // --- wiring

  strategySelect.addEventListener("change", () => {
    syncStrategyHint();
    changed();
  });
  providerSelect.addEventListener("change", () => {
    clearFieldError("provider");
    syncModels();
  });
  modelSelect.addEventListener("change", () => {
    clearFieldError("model");
    syncSizes();
  });
  sizeSelect.addEventListener("change", () => {
    clearFieldError("size");
    changed();
  });
  continuitySelect.addEventListener("change", () => {
    clearFieldError("continuity");
    syncContinuityHint();
    changed();
  });
  slider.addEventListener("input", () => {
    clearFieldError("duration_seconds");
    changed();
  });
  for (const [field, id] of [["title", "id_title"], ["prompt", "id_prompt"]]) {
    document.getElementById(id).addEventListener("input", (event) => {
      if (event.target.value.trim()) clearFieldError(field);
      if (field === "prompt" && !planned()) changed();
    });
  }
  fileInput.addEventListener("change", onFileChosen);
  $("#reference-clear").addEventListener("click", () => {
    fileInput.value = "";
    resetImage();
    fileInput.focus();
  });
  $("#plan-button").addEventListener("click", plan);
  $("#replan").addEventListener("click", plan);
  $("#add-card").addEventListener("click", () => editor.addCard());
  saveDraft.addEventListener("click", () => save(false));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save(true);
  });

  syncModels();
  syncStrategyHint();
  syncContinuityHint();
  editor.fill([]);
  form.dataset.ready = "true";
  // A handle for the browser tests.
  window.soraStoryboard = { cards: () => editor.cards.map((c) => c.prompt) };
}

const config = readConfig();
if (config && config.page === "new") initNewJob(config);
