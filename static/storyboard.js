// The new-video page: plan, then render.
//
// Prompt, duration and model first. "Plan" asks the server for its plan (POST /api/estimate/: the same
// planner and prices as the API and the CLI) and shows the segments as cards. The person edits,
// reorders (drag, Move buttons, Alt+Arrow keys), adds, removes, splits and merges cards; the duration
// follows the cards and the server prices the cards again after every change (debounced). The cards are
// sent as manual segments, so what the person sees is what renders. "Save draft" stores the job without
// rendering (it stays in the list); "Render" stores and starts it.

import {
  $,
  $$,
  api,
  errorText,
  formatMoney,
  jobUrl,
  plural,
  readConfig,
} from "./common.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];
const ESTIMATE_DEBOUNCE_MS = 250;
// A sentence ends at . ! ? (or their CJK forms), keeping the mark and what follows up to the next one.
const SENTENCE = /[^.!?。！？]+[.!?。！？]*["'”’)]*\s*/g;

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

function splitSentences(text) {
  return (text.match(SENTENCE) || []).map((s) => s.trim()).filter(Boolean);
}

// Split one card's prompt in two at a sentence boundary near the middle; a single sentence is kept
// whole on both halves (never a fragment of a sentence), for the person to reword.
export function splitPrompt(text) {
  const sentences = splitSentences(text);
  if (sentences.length < 2) return [text.trim(), text.trim()];
  const half = Math.ceil(sentences.length / 2);
  return [sentences.slice(0, half).join(" "), sentences.slice(half).join(" ")];
}

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

  // The cards, in order. Each: {uid, prompt, image: {file, valid, message, url} | null, node}.
  let cards = [];
  let nextUid = 1;
  let image = { file: null, valid: true, message: "" };
  let previewUrl = null;
  let drag = null; // {card, target}: a card being dragged by its handle

  const planned = () => cards.length > 0;

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
    return planned() ? cards.length * segmentSeconds : Number(slider.value);
  }

  function syncDuration() {
    const seconds = durationSeconds();
    const count = planned() ? cards.length : Math.max(1, Math.round(seconds / segmentSeconds));
    if (planned()) slider.value = String(seconds);
    slider.disabled = planned();
    $("#duration-follows").hidden = !planned();
    $("#duration-value").textContent = `${seconds} s`;
    $("#segment-count").textContent = plural(count, planned() ? "card" : "segment");
    slider.setAttribute("aria-valuetext", `${seconds} seconds, ${plural(count, "segment")}`);
  }

  // --- the server's estimate (and, once planned, the cards' time ranges)

  let estimateTimer = null;
  let estimateSeq = 0;
  // The last plan the server priced: its slots label the cards by position until the next one arrives.
  let lastPlan = null;

  function changed() {
    syncDuration();
    labelTimes(); // time ranges are positional: a moved card takes its new slot's range at once
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(fetchEstimate, ESTIMATE_DEBOUNCE_MS);
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

  async function fetchEstimate() {
    const seq = ++estimateSeq;
    form.dataset.estimating = "true";
    const result = await api("POST", config.api.estimate, estimateBody());
    if (seq !== estimateSeq) return; // a newer change is being priced
    form.dataset.estimating = "false";
    const cost = $("#cost-estimate");
    const detail = $("#cost-detail");
    if (!result.ok) {
      cost.textContent = "—";
      detail.textContent = errorText(result);
      $("#cards-cost").textContent = "—";
      $("#cards-cost-detail").textContent = detail.textContent;
      return;
    }
    showPlan(result.data);
  }

  function showPlan(plan) {
    $("#cost-estimate").textContent = formatMoney(Number(plan.cost_usd));
    const price = Number(plan.price_per_second);
    const perSecond = price ? ` at ${formatMoney(price)}/s` : " (free)";
    let text = `${plural(plan.segments.length, "segment")}, ${plan.billed_seconds} s billed for ${plan.planned_seconds} s shown${perSecond}`;
    if (plan.trimmed_seconds > 0) text += `; ${plan.trimmed_seconds} s trimmed`;
    $("#cost-detail").textContent = text;
    // The same figures under the cards, where the person is editing (the side panel is the live one).
    $("#cards-cost").textContent = formatMoney(Number(plan.cost_usd));
    $("#cards-cost-detail").textContent = text;
    if (!planned()) {
      $("#segment-count").textContent = plural(plan.segments.length, "segment");
      return;
    }
    lastPlan = plan;
    labelTimes();
  }

  function labelTimes() {
    if (!lastPlan || !planned()) return;
    lastPlan.segments.forEach((segment, index) => {
      const card = cards[index];
      if (!card) return;
      const range = `${segment.start_seconds}–${segment.end_seconds} s`;
      const render =
        segment.render_seconds && segment.render_seconds !== segment.end_seconds - segment.start_seconds
          ? `, renders ${segment.render_seconds} s`
          : "";
      $("[data-role=time]", card.node).textContent = `${range}${render}`;
    });
  }

  // --- cards

  function cardNode(card) {
    const node = $("#card-template").content.firstElementChild.cloneNode(true);
    const prompt = $("[data-role=prompt]", node);
    prompt.value = card.prompt;
    prompt.addEventListener("input", () => {
      card.prompt = prompt.value;
      if (prompt.value.trim()) clearCardError(card);
      changed();
    });
    $("[data-role=image]", node).addEventListener("change", (event) => onCardImage(card, event.target));
    $("[data-role=up]", node).addEventListener("click", () => moveCard(card, -1, "up"));
    $("[data-role=down]", node).addEventListener("click", () => moveCard(card, 1, "down"));
    $("[data-role=split]", node).addEventListener("click", () => splitCard(card));
    $("[data-role=merge]", node).addEventListener("click", () => mergeCard(card));
    $("[data-role=remove]", node).addEventListener("click", () => removeCard(card));
    node.addEventListener("keydown", (event) => {
      if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
      event.preventDefault();
      moveCard(card, event.key === "ArrowUp" ? -1 : 1, null);
    });
    // Drag by the handle (mouse, pen or touch: pointer events, so phones can drag too) and drop on
    // any card; the card goes where it was dropped.
    const handle = $("[data-role=handle]", node);
    handle.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      handle.setPointerCapture(event.pointerId);
      node.classList.add("dragging");
      drag = { card, target: null };
    });
    handle.addEventListener("pointermove", (event) => {
      if (!drag || drag.card !== card) return;
      const under = document.elementFromPoint(event.clientX, event.clientY);
      const target = under && under.closest("#cards > li");
      if (drag.target && drag.target !== target) drag.target.classList.remove("drop-target");
      drag.target = target && target !== node ? target : null;
      if (drag.target) drag.target.classList.add("drop-target");
    });
    const endDrag = (event) => {
      if (!drag || drag.card !== card) return;
      const target = drag.target;
      drag = null;
      node.classList.remove("dragging");
      if (handle.hasPointerCapture(event.pointerId)) handle.releasePointerCapture(event.pointerId);
      if (!target || event.type === "pointercancel") return;
      target.classList.remove("drop-target");
      const to = cards.findIndex((c) => c.node === target);
      const from = cards.indexOf(card);
      if (to < 0 || from === to) return;
      cards.splice(from, 1);
      cards.splice(to, 0, card);
      renderCards();
      handle.focus();
      announce(`Card ${from + 1} moved to position ${to + 1} of ${cards.length}.`);
      changed();
    };
    handle.addEventListener("pointerup", endDrag);
    handle.addEventListener("pointercancel", endDrag);
    handle.addEventListener("keydown", (event) => {
      if (event.key === "ArrowUp" || event.key === "ArrowDown") {
        event.preventDefault();
        moveCard(card, event.key === "ArrowUp" ? -1 : 1, "handle");
      }
    });
    return node;
  }

  function newCard(prompt) {
    const card = { uid: nextUid++, prompt, image: null, node: null };
    card.node = cardNode(card);
    return card;
  }

  // Puts the card nodes in order and numbers them; focus stays on the element that had it.
  function renderCards() {
    const focused = document.activeElement;
    list.replaceChildren(...cards.map((c) => c.node));
    cards.forEach((card, index) => {
      const n = index + 1;
      const node = card.node;
      node.dataset.testid = `card-${index}`;
      node.dataset.uid = String(card.uid);
      $("[data-role=title]", node).textContent = `Card ${n}`;
      const prompt = $("[data-role=prompt]", node);
      prompt.id = `card-prompt-${card.uid}`;
      prompt.dataset.testid = `card-${index}-prompt`;
      const error = $("[data-role=error]", node);
      error.id = `card-error-${card.uid}`;
      error.dataset.testid = `card-${index}-error`;
      prompt.setAttribute("aria-describedby", `${error.id} storyboard-hint`);
      const label = $("[data-role=prompt-label]", node);
      label.htmlFor = prompt.id;
      label.textContent = `Prompt for card ${n}`;
      const imageInput = $("[data-role=image]", node);
      imageInput.id = `card-image-${card.uid}`;
      imageInput.dataset.testid = `card-${index}-image`;
      const imageLabel = $("[data-role=image-label]", node);
      imageLabel.htmlFor = imageInput.id;
      imageLabel.textContent = `Reference image for card ${n} (optional)`;
      const handle = $("[data-role=handle]", node);
      handle.setAttribute("aria-label", `Drag to reorder card ${n} (or press Arrow Up/Down)`);
      handle.dataset.testid = `card-${index}-handle`;
      for (const [role, text] of [
        ["up", "Move card {n} up"],
        ["down", "Move card {n} down"],
        ["split", "Split card {n} in two"],
        ["merge", "Merge card {n} with the next card"],
        ["remove", "Remove card {n}"],
      ]) {
        const button = $(`[data-role=${role}]`, node);
        button.setAttribute("aria-label", text.replace("{n}", n));
        button.dataset.testid = `card-${index}-${role}`;
      }
      $("[data-role=up]", node).disabled = index === 0;
      $("[data-role=down]", node).disabled = index === cards.length - 1;
      $("[data-role=merge]", node).disabled = index === cards.length - 1;
      $("[data-role=remove]", node).disabled = cards.length === 1;
      $("[data-role=split]", node).disabled = cards.length >= maxCards;
    });
    $("#add-card").disabled = cards.length >= maxCards;
    $("#storyboard").hidden = !planned();
    $("#strategy-field").hidden = planned();
    if (focused && document.activeElement !== focused && document.contains(focused)) focused.focus();
    syncDuration();
  }

  function announce(text) {
    status.textContent = text;
  }

  function moveCard(card, step, button) {
    const from = cards.indexOf(card);
    const to = from + step;
    if (to < 0 || to >= cards.length) return;
    cards.splice(from, 1);
    cards.splice(to, 0, card);
    renderCards();
    // A Move button that can no longer move (the card reached an end) hands the focus to its twin.
    if (button === "up" || button === "down") {
      const own = $(`[data-role=${button}]`, card.node);
      const other = $(`[data-role=${button === "up" ? "down" : "up"}]`, card.node);
      (own.disabled ? other : own).focus();
    }
    announce(`Card ${from + 1} moved to position ${to + 1} of ${cards.length}.`);
    changed();
  }

  function splitCard(card) {
    if (cards.length >= maxCards) return;
    const [first, second] = splitPrompt(card.prompt);
    card.prompt = first;
    $("[data-role=prompt]", card.node).value = first;
    const index = cards.indexOf(card);
    const added = newCard(second);
    cards.splice(index + 1, 0, added);
    renderCards();
    $("[data-role=prompt]", added.node).focus();
    announce(`Card ${index + 1} split in two; there are ${cards.length} cards.`);
    changed();
  }

  function mergeCard(card) {
    const index = cards.indexOf(card);
    const next = cards[index + 1];
    if (!next) return;
    card.prompt = [card.prompt.trim(), next.prompt.trim()].filter(Boolean).join(" ");
    $("[data-role=prompt]", card.node).value = card.prompt;
    if (!card.image && next.image) {
      card.image = next.image;
      copyImageInput(next, card);
    }
    cards.splice(index + 1, 1);
    renderCards();
    $("[data-role=prompt]", card.node).focus();
    announce(`Cards ${index + 1} and ${index + 2} merged; there are ${cards.length} cards.`);
    changed();
  }

  function removeCard(card) {
    if (cards.length === 1) return;
    const index = cards.indexOf(card);
    cards.splice(index, 1);
    renderCards();
    const neighbour = cards[Math.min(index, cards.length - 1)];
    $("[data-role=prompt]", neighbour.node).focus();
    announce(`Card ${index + 1} removed; there are ${cards.length} cards.`);
    changed();
  }

  function addCard() {
    if (cards.length >= maxCards) return;
    const card = newCard("");
    cards.push(card);
    renderCards();
    $("[data-role=prompt]", card.node).focus();
    announce(`Card ${cards.length} added.`);
    changed();
  }

  function copyImageInput(from, to) {
    const transfer = new DataTransfer();
    if (from.image && from.image.file) transfer.items.add(from.image.file);
    const target = $("[data-role=image]", to.node);
    target.files = transfer.files;
    const img = $("[data-role=image-preview]", to.node);
    img.src = from.image ? from.image.url : "";
    img.alt = `Reference image chosen for this card`;
    img.hidden = !from.image;
  }

  async function checkImage(file) {
    if (!IMAGE_TYPES.includes(file.type)) return `“${file.name}” is not a PNG, JPEG or WebP image.`;
    if (file.size > config.upload_max_bytes) {
      return `“${file.name}” is larger than ${(config.upload_max_bytes / 1048576).toFixed(0)} MB.`;
    }
    try {
      const bitmap = await createImageBitmap(file);
      bitmap.close();
    } catch {
      return `“${file.name}” is not a readable PNG, JPEG or WebP image.`;
    }
    return "";
  }

  async function onCardImage(card, input) {
    const file = input.files[0];
    const img = $("[data-role=image-preview]", card.node);
    if (card.image && card.image.url) URL.revokeObjectURL(card.image.url);
    card.image = null;
    img.hidden = true;
    clearCardError(card);
    if (!file) return;
    const problem = await checkImage(file);
    if (problem) {
      setCardError(card, problem);
      input.value = "";
      return;
    }
    card.image = { file, url: URL.createObjectURL(file) };
    img.src = card.image.url;
    img.alt = `Reference image chosen for card ${cards.indexOf(card) + 1}`;
    img.hidden = false;
  }

  function setCardError(card, text) {
    const error = $("[data-role=error]", card.node);
    error.textContent = text;
    error.hidden = false;
    $("[data-role=prompt]", card.node).setAttribute("aria-invalid", "true");
  }

  function clearCardError(card) {
    const error = $("[data-role=error]", card.node);
    error.hidden = true;
    error.textContent = "";
    $("[data-role=prompt]", card.node).removeAttribute("aria-invalid");
    pruneSummary();
  }

  function fillCards(prompts) {
    for (const card of cards) if (card.image && card.image.url) URL.revokeObjectURL(card.image.url);
    cards = prompts.map((prompt) => newCard(prompt));
    renderCards();
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
    fillCards(result.data.segments.map((s) => s.prompt));
    showPlan(result.data);
    announce(`Planned ${plural(cards.length, "card")}. Edit them, then save a draft or render.`);
    $("[data-role=prompt]", cards[0].node).focus();
    changed();
  }

  // --- errors

  function errorElement(field) {
    const card = /^segments\.(\d+)/.exec(field);
    if (card && cards[Number(card[1])]) return $("[data-role=error]", cards[Number(card[1])].node);
    const target = FIELD_TARGETS[field];
    return target ? document.getElementById(`error-${target}`) : null;
  }

  function inputFor(field) {
    const card = /^segments\.(\d+)/.exec(field);
    if (card && cards[Number(card[1])]) return $("[data-role=prompt]", cards[Number(card[1])].node);
    if (field === "segments") return cards.length ? $("[data-role=prompt]", cards[0].node) : slider;
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
    cards.forEach((card, index) => {
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
    const problem = await checkImage(file);
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
      body.segments = cards.map((card) => ({ prompt: card.prompt }));
      // The prompt is the story's shared subject; a blank one is made from the cards.
      if (!body.prompt.trim()) body.prompt = cards.map((c) => c.prompt).join(" ");
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
    const cardImages = cards.map((card, index) => [index, card.image]).filter(([, img]) => img);
    // Card images are attached to the stored draft, then the render starts: the create request only
    // carries the image for the whole video.
    const renderNow = render && !cardImages.length;
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
    for (const [index, img] of cardImages) {
      const upload = new FormData();
      upload.append("image", img.file);
      upload.append("segment_index", String(index));
      const added = await api("POST", jobUrl(config.api.reference_images, job.id), upload);
      if (!added.ok) {
        busy(false);
        showErrors(
          { [`segments.${index}`]: [errorText(added)] },
          "The draft is saved, but a card's image was refused:",
        );
        status.textContent = "";
        const link = document.createElement("a");
        link.href = page;
        link.textContent = "Open the saved draft";
        status.append(link);
        return;
      }
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
  $("#add-card").addEventListener("click", addCard);
  saveDraft.addEventListener("click", () => save(false));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save(true);
  });

  syncModels();
  syncStrategyHint();
  syncContinuityHint();
  renderCards();
  form.dataset.ready = "true";
  // A handle for the browser tests.
  window.soraStoryboard = { cards: () => cards.map((c) => c.prompt) };
}

const config = readConfig();
if (config && config.page === "new") initNewJob(config);
