// The web workspace's one ES module (no build step, nothing from the network but this site).
//
// Two pages use it, told apart by the JSON config the server renders into the page:
//   "new": the new-job form. The server prices the job as it changes (POST /api/estimate/, the same
//          planner as the API and the CLI) and the form submits the job, with its reference image, in
//          one request (POST /api/video-jobs/ as multipart: the job's JSON and the image).
//   "job": the job page. It applies the socket's snapshot and then its events to the timeline, and
//          reconnects with backoff after a drop (a reconnect receives a fresh snapshot). Progress comes
//          from the server with every event; the page computes none of it.

const STATUS_LABELS = {
  draft: "Draft",
  pending: "Pending",
  queued: "Queued",
  rendering: "Rendering",
  assembling: "Assembling",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};
const ACTIVE = new Set(["queued", "rendering", "assembling"]);
const FINISHED = new Set(["completed", "failed", "cancelled"]);
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];
const ESTIMATE_DEBOUNCE_MS = 200;

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function readConfig() {
  const element = document.getElementById("workspace-config");
  return element ? JSON.parse(element.textContent) : null;
}

function csrfToken() {
  const input = $("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

// fetch() against our API. Never throws: returns {ok, status, data}, where data is the JSON body
// (the API's error shape {detail, code, errors?} on failure) or a made-up {detail} when there is none.
async function api(method, url, body) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    return { ok: false, status: 0, data: { detail: "The server could not be reached. Check the connection and try again." } };
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = { detail: `The server answered ${response.status} ${response.statusText}.` };
    }
  }
  return { ok: response.ok, status: response.status, data };
}

function statusLabel(status) {
  return STATUS_LABELS[status] || status;
}

function setBadge(element, status) {
  element.textContent = statusLabel(status);
  element.className = element.className.replace(/\bstatus-\S+/g, "").trim() + ` status-${status}`;
  element.dataset.status = status;
}

function formatMoney(value) {
  return `$${value.toFixed(2)}`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// --- The new-job page ---------------------------------------------------------------------------

// Which error element shows the messages of an API field (DRF names; nested ones are dotted).
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
  segment_index: "image",
  // The page sends its one image as the first `reference_image` part of a multipart create.
  "reference_image.0": "image",
  non_field_errors: "non_field_errors",
};
const FIELD_LABELS = {
  title: "Title",
  prompt: "Prompt",
  duration_seconds: "Duration",
  segment_seconds: "Segment length",
  strategy: "Split the prompt by",
  segmentation_mode: "Segmentation",
  segments: "Segment prompts",
  continuity: "Continuity",
  provider: "Provider",
  model: "Model",
  size: "Size",
  image: "Reference image",
  segment_index: "Reference image",
  "reference_image.0": "Reference image",
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
  const fileInput = $("#id_reference");
  const previewBox = $("#reference-preview-box");
  const preview = $("#reference-preview");
  const submit = $("#submit-job");
  const status = $("#form-status");
  const summary = $("#form-errors");
  const providers = new Map(config.providers.map((p) => [p.name, p]));
  const segmentSeconds = config.segment_seconds;
  // Manual prompts by segment index, kept when the slider drops segments so that moving it back
  // brings the text back.
  const manualTexts = [];
  let image = { file: null, valid: true, message: "" };
  let previewUrl = null;

  const mode = () => $("input[name=segmentation_mode]:checked").value;
  const segmentCount = () => Math.max(1, Math.round(Number(slider.value) / segmentSeconds));

  function fillSelect(select, values, preferred) {
    const previous = select.value;
    select.replaceChildren(...values.map((value) => new Option(value, value)));
    const pick = [previous, preferred].find((v) => v && values.includes(v));
    select.value = pick || values[0] || "";
  }

  function syncModels() {
    const provider = providers.get(providerSelect.value);
    fillSelect(modelSelect, provider.models.map((m) => m.id), provider.default_model);
    // Show each model's name where it has one (the value stays the id the API takes).
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
    updateEstimate();
  }

  // The estimate is the server's (one source of pricing for the API, the CLI and this page). Asked
  // again after every change, at most one request in flight; only the newest answer is shown.
  let estimateTimer = null;
  let estimateSeq = 0;

  function updateEstimate() {
    const count = segmentCount();
    const seconds = Number(slider.value);
    $("#duration-value").textContent = `${seconds} s`;
    $("#segment-count").textContent = plural(count, "segment");
    slider.setAttribute("aria-valuetext", `${seconds} seconds, ${plural(count, "segment")}`);
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(fetchEstimate, ESTIMATE_DEBOUNCE_MS);
  }

  async function fetchEstimate() {
    const seq = ++estimateSeq;
    const body = payload(false);
    delete body.render;
    delete body.title;
    if (mode() === "manual" && body.segments.some((s) => !s.prompt.trim())) {
      body.segments = body.segments.map((s, i) => ({ prompt: s.prompt.trim() || `Segment ${i + 1}` }));
    }
    if (!body.prompt.trim()) body.prompt = "(your prompt)";
    const result = await api("POST", config.api.estimate, body);
    if (seq !== estimateSeq) return; // a newer change is being priced
    const cost = $("#cost-estimate");
    const detail = $("#cost-detail");
    if (!result.ok) {
      cost.textContent = "—";
      const errors = (result.data && result.data.errors) || {};
      const first = Object.values(errors)[0];
      detail.textContent = first ? first.join(" ") : (result.data && result.data.detail) || "";
      return;
    }
    const plan = result.data;
    // The server's plan decides the segments (their lengths fit the model), not the slider's arithmetic.
    $("#segment-count").textContent = plural(plan.segments.length, "segment");
    cost.textContent = formatMoney(Number(plan.cost_usd));
    const price = Number(plan.price_per_second);
    const perSecond = price ? ` at ${formatMoney(price)}/s` : " (free)";
    const renders = new Set(plan.segments.map((s) => s.render_seconds));
    const trims = new Set(plan.segments.map((s) => s.trimmed_seconds));
    if (renders.size === 1 && trims.size === 1) {
      const [render] = renders;
      const [trim] = trims;
      detail.textContent =
        `${plan.segments.length} × ${render} s billed${perSecond}` +
        (trim > 0 ? `; ${trim} s of each clip is trimmed` : "");
    } else {
      detail.textContent =
        `${plan.billed_seconds} s billed for ${plan.planned_seconds} s shown${perSecond}` +
        (plan.trimmed_seconds > 0 ? `; ${plan.trimmed_seconds} s trimmed` : "");
    }
  }

  function syncSegmentEditor() {
    const list = $("#segment-prompts");
    const count = segmentCount();
    while (list.children.length > count) list.lastElementChild.remove();
    const template = $("#segment-prompt-template");
    while (list.children.length < count) {
      const index = list.children.length;
      const item = template.content.firstElementChild.cloneNode(true);
      const label = $("label", item);
      const textarea = $("textarea", item);
      const error = document.createElement("p");
      const start = index * segmentSeconds;
      textarea.id = `id_segment_${index}`;
      textarea.name = `segment_${index}`;
      textarea.dataset.testid = `segment-prompt-${index}`;
      textarea.value = manualTexts[index] ?? "";
      textarea.setAttribute("aria-describedby", `error-segment-${index}`);
      textarea.addEventListener("input", () => {
        manualTexts[index] = textarea.value;
        updateEstimate();
      });
      label.htmlFor = textarea.id;
      label.textContent = `Segment ${index + 1} (${start}–${start + segmentSeconds} s)`;
      error.className = "field-error";
      error.id = `error-segment-${index}`;
      error.dataset.testid = `error-segment-${index}`;
      error.hidden = true;
      item.append(error);
      list.append(item);
    }
  }

  function syncMode() {
    const manual = mode() === "manual";
    $("#segment-editor").hidden = !manual;
    $("#strategy-field").hidden = manual;
    if (manual) syncSegmentEditor();
  }

  // --- errors

  function errorElement(field) {
    const segment = /^segments\.(\d+)(?:\.prompt)?$/.exec(field);
    if (segment) {
      const element = document.getElementById(`error-segment-${segment[1]}`);
      if (element) return element;
    }
    const target = FIELD_TARGETS[field];
    return target ? document.getElementById(`error-${target}`) : null;
  }

  function inputFor(field) {
    const segment = /^segments\.(\d+)(?:\.prompt)?$/.exec(field);
    if (segment) return document.getElementById(`id_segment_${segment[1]}`);
    if (field === "segments") return $("#segment-prompts textarea") || slider;
    return document.getElementById(FIELD_INPUTS[FIELD_TARGETS[field]] || "");
  }

  function label(field) {
    const segment = /^segments\.(\d+)/.exec(field);
    if (segment) return `Segment ${Number(segment[1]) + 1}`;
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

  function showFieldError(field, messages) {
    const element = errorElement(field);
    const input = inputFor(field);
    if (input) input.setAttribute("aria-invalid", "true");
    if (!element) return false;
    element.textContent = messages.join(" ");
    element.hidden = false;
    return true;
  }

  // errors: {field: [messages]}. Every message is shown beside its field and listed in the summary,
  // which takes the focus so a screen reader hears what went wrong.
  function showErrors(errors, headline = "Please fix the following:") {
    const items = [];
    for (const [field, messages] of Object.entries(errors)) {
      showFieldError(field, messages);
      const input = inputFor(field);
      const item = document.createElement("li");
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
    const list = document.createElement("ul");
    list.append(...items);
    summary.replaceChildren(heading, list);
    summary.hidden = false;
    summary.focus();
  }

  function showApiError(result, fallbackField = "non_field_errors") {
    const data = result.data || {};
    if (result.status === 400 && data.errors) {
      showErrors(data.errors);
    } else {
      showErrors({ [fallbackField]: [data.detail || `The request failed (${result.status}).`] }, "Could not create the video:");
    }
  }

  function localErrors() {
    const errors = {};
    if (!$("#id_prompt").value.trim()) errors.prompt = ["Describe the video you want."];
    if (mode() === "manual") {
      $$("#segment-prompts textarea").forEach((textarea, index) => {
        if (!textarea.value.trim()) errors[`segments.${index}.prompt`] = [`Segment ${index + 1} needs a prompt.`];
      });
    }
    if (image.file && !image.valid) errors.image = [image.message];
    if ($("#id_continuity").value === "reference" && !image.file) {
      errors.continuity = ["Reference continuity needs a reference image: choose one below."];
    }
    return errors;
  }

  // --- the reference image

  function resetImage() {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    image = { file: null, valid: true, message: "" };
    preview.removeAttribute("src");
    previewBox.hidden = true;
    const error = $("#error-image");
    error.hidden = true;
    error.textContent = "";
    fileInput.removeAttribute("aria-invalid");
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
    // Checked here for a quick answer; the server checks the content again (Pillow) on upload.
    if (!IMAGE_TYPES.includes(file.type)) {
      rejectImage(file, `“${file.name}” is not a PNG, JPEG or WebP image.`);
      return;
    }
    if (file.size > config.upload_max_bytes) {
      const limit = (config.upload_max_bytes / 1048576).toFixed(0);
      rejectImage(file, `“${file.name}” is larger than ${limit} MB.`);
      return;
    }
    try {
      const bitmap = await createImageBitmap(file);
      bitmap.close();
    } catch {
      rejectImage(file, `“${file.name}” is not a readable PNG, JPEG or WebP image.`);
      return;
    }
    image = { file, valid: true, message: "" };
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    previewBox.hidden = false;
  }

  // --- submit

  function busy(on, message = "") {
    submit.disabled = on;
    form.setAttribute("aria-busy", on ? "true" : "false");
    status.textContent = message;
  }

  function payload(render) {
    const body = {
      title: $("#id_title").value.trim(),
      prompt: $("#id_prompt").value,
      duration_seconds: Number(slider.value),
      segment_seconds: segmentSeconds,
      segmentation_mode: mode(),
      continuity: $("#id_continuity").value,
      provider: providerSelect.value,
      model: modelSelect.value,
      size: sizeSelect.value,
      render,
    };
    if (mode() === "manual") {
      body.segments = $$("#segment-prompts textarea").map((textarea) => ({ prompt: textarea.value }));
    } else {
      body.strategy = $("#id_strategy").value;
    }
    return body;
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors();
    const errors = localErrors();
    if (Object.keys(errors).length) {
      showErrors(errors);
      return;
    }
    busy(true, image.file ? "Uploading and starting the render…" : "Starting the render…");
    // One request: the job and its image are stored and the render started together, or nothing is.
    let body = payload(true);
    if (image.file) {
      body = new FormData();
      body.append("job", JSON.stringify(payload(true)));
      body.append("reference_image", image.file);
    }
    const created = await api("POST", config.api.jobs, body);
    if (!created.ok) {
      busy(false);
      showApiError(created, image.file ? "image" : "non_field_errors");
      return;
    }
    const job = created.data;
    busy(true, "Opening the job…");
    window.location.assign(config.api.job_page.replace("00000000-0000-0000-0000-000000000000", job.id));
  }

  // The menu shows short names (a long option is cut off inside a select); the chosen strategy's
  // whole description is the hint below it, which wraps.
  const strategySelect = $("#id_strategy");
  const syncStrategyHint = () => {
    const option = strategySelect.selectedOptions[0];
    $("#strategy-hint").textContent = option ? option.dataset.description : "";
  };

  strategySelect.addEventListener("change", syncStrategyHint);
  providerSelect.addEventListener("change", syncModels);
  modelSelect.addEventListener("change", syncSizes);
  sizeSelect.addEventListener("change", updateEstimate);
  slider.addEventListener("input", () => {
    updateEstimate();
    if (mode() === "manual") syncSegmentEditor();
  });
  $$("input[name=segmentation_mode]").forEach((radio) => radio.addEventListener("change", syncMode));
  fileInput.addEventListener("change", onFileChosen);
  $("#reference-clear").addEventListener("click", () => {
    fileInput.value = "";
    resetImage();
    fileInput.focus();
  });
  form.addEventListener("submit", onSubmit);

  syncModels();
  syncMode();
  syncStrategyHint();
  form.dataset.ready = "true";
}

// --- The live socket ----------------------------------------------------------------------------

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10000;
// Closed by the server on purpose: retrying cannot help.
const FINAL_CLOSE_CODES = { 4401: "unauthorized", 4404: "gone" };

class LiveSocket {
  constructor(url, { onMessage, onState }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.ws = null;
    window.addEventListener("online", () => this.reconnectNow());
    this.connect();
  }

  connect() {
    this.timer = null;
    this.onState(this.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.onState("live");
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(message);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (FINAL_CLOSE_CODES[event.code]) {
        this.stopped = true;
        this.onState(FINAL_CLOSE_CODES[event.code]);
        return;
      }
      if (this.stopped) return;
      // Exponential backoff with jitter: 0.5 s doubling to 10 s, each wait somewhere in its upper half
      // so that many pages dropped together do not all come back in the same instant.
      const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.attempt);
      const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
      this.attempt += 1;
      this.onState("reconnecting", delay);
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  reconnectNow() {
    if (this.stopped || !this.timer) return;
    clearTimeout(this.timer);
    this.connect();
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }
}

// --- The job page -------------------------------------------------------------------------------

function initJobPage(config) {
  const job = { ...config.job, segments: config.job.segments.map((s) => ({ ...s })), assembly: null };
  const announcer = $("#announcer");
  const actionError = $("#action-error");
  let snapshotInFlight = false;
  let snapshotAgain = false;
  let snapshots = 0;
  let events = 0;

  function segmentByIndex(index) {
    return job.segments.find((s) => s.index === index);
  }

  function announce(text) {
    announcer.textContent = text;
  }

  // Every event carries the job's status and progress as the server computed them.
  function applyJob(state) {
    if (!state) return;
    for (const key of ["status", "progress"]) {
      if (key in state) job[key] = state[key];
    }
  }

  function absolute(url) {
    return url ? new URL(url, window.location.href).href : "";
  }

  function renderJob() {
    setBadge($("#job-status"), job.status);
    const progress = Math.max(0, Math.min(100, job.progress || 0));
    $("#job-progress").value = progress;
    $("#job-progress").textContent = `${progress.toFixed(0)}%`;
    $("#job-progress-text").textContent = `${progress.toFixed(0)}%`;
    const error = $("#job-error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
    $("#job-render").hidden = !(job.status === "draft" || job.status === "cancelled");
    $("#job-cancel").hidden = !ACTIVE.has(job.status);
    $("#job-retry").hidden = job.status !== "failed";
    const assembly = $("#assembly-status");
    assembly.hidden = job.status !== "assembling";
    assembly.textContent =
      job.assembly === null ? "Joining the clips…" : `Joining the clips: ${job.assembly.toFixed(0)}%`;

    const output = $("#job-output");
    const video = $("#job-video");
    const link = $("#download-link");
    if (job.output_url) {
      const url = absolute(job.output_url);
      if (video.src !== url) {
        video.src = url;
        video.load();
      }
      const poster = absolute(job.poster_url);
      if (poster && video.poster !== poster) video.poster = poster;
      link.href = url;
      output.hidden = false;
    } else {
      output.hidden = true;
    }
    for (const segment of job.segments) renderSegment(segment);
  }

  function renderSegment(segment) {
    const item = $(`#timeline li[data-index="${segment.index}"]`);
    if (!item) return;
    item.dataset.status = segment.status;
    setBadge($("[data-role=status]", item), segment.status);
    const progress = $("[data-role=progress]", item);
    progress.value = segment.progress || 0;
    progress.textContent = `${(segment.progress || 0).toFixed(0)}%`;
    const parts = [];
    if (segment.attempts > 1) parts.push(`attempt ${segment.attempts}`);
    // Shown when a failover moved the segment off the job's model.
    if (segment.rendered_by && segment.rendered_by !== config.job_model) parts.push(`rendered by ${segment.rendered_by}`);
    if (segment.status === "rendering") {
      parts.push(`${(segment.progress || 0).toFixed(0)}%`);
      if (segment.provider_status) parts.push(segment.provider_status.replace(/_/g, " "));
    }
    $("[data-role=detail]", item).textContent = parts.join(" · ");
    if (typeof segment.prompt === "string") $("[data-role=prompt]", item).textContent = segment.prompt;
    const error = $("[data-role=error]", item);
    error.textContent = segment.error || "";
    // A completed segment's "error" is only the reason for an earlier retry; do not alarm anyone.
    error.hidden = !segment.error || segment.status === "completed";
    const thumb = $("[data-role=thumb]", item);
    const placeholder = $(".thumb-placeholder", item);
    if (segment.thumbnail_url) {
      const url = absolute(segment.thumbnail_url);
      if (thumb.src !== url) thumb.src = url;
      thumb.hidden = false;
      placeholder.hidden = true;
    } else {
      thumb.hidden = true;
      placeholder.hidden = false;
    }
    $("[data-role=rerender]", item).hidden = !FINISHED.has(job.status);
  }

  // A fresh snapshot (or an API response, which has the same fields) replaces what we know.
  function applyState(state) {
    const before = new Map(job.segments.map((s) => [s.index, s.status]));
    for (const key of ["status", "progress", "error", "output_url", "poster_url", "title"]) {
      if (key in state) job[key] = state[key];
    }
    if (Array.isArray(state.segments)) {
      job.segments = state.segments.map((s) => ({ ...s }));
      if (state.segments.some((s) => !$(`#timeline li[data-index="${s.index}"]`))) {
        // Segments this page has never drawn: only a reload shows them.
        window.location.reload();
        return;
      }
    }
    if (job.status !== "assembling") job.assembly = null;
    renderJob();
    for (const s of job.segments) {
      if (before.get(s.index) !== s.status && (s.status === "completed" || s.status === "failed")) {
        announce(`Segment ${s.index + 1} ${statusLabel(s.status).toLowerCase()}.`);
      }
    }
  }

  function wantSnapshot() {
    if (snapshotInFlight) {
      snapshotAgain = true;
      return;
    }
    snapshotInFlight = socket.send({ action: "snapshot" });
  }

  function onMessage(message) {
    const data = message.data || {};
    if (message.event !== "snapshot") {
      // Counted where tests (and curious people) can see that events, not only snapshots, arrived.
      events += 1;
      document.body.dataset.events = String(events);
    }
    switch (message.event) {
      case "snapshot":
        snapshots += 1;
        document.body.dataset.snapshots = String(snapshots);
        snapshotInFlight = false;
        applyState(message.job);
        if (snapshotAgain) {
          snapshotAgain = false;
          wantSnapshot();
        }
        break;
      case "frame-progress": {
        const segment = segmentByIndex(data.index);
        if (!segment) {
          wantSnapshot();
          break;
        }
        const previous = segment.status;
        // The event is the segment's whole state, the same shape as the snapshot's segments.
        Object.assign(segment, data);
        applyJob(message.job);
        renderJob();
        if (previous !== data.status && (data.status === "completed" || data.status === "failed")) {
          announce(`Segment ${data.index + 1} ${statusLabel(data.status).toLowerCase()}.`);
        }
        break;
      }
      case "job-assembly":
        job.assembly = data.progress;
        applyJob(message.job);
        renderJob();
        break;
      case "job-status":
        for (const key of ["status", "progress", "output_url", "error"]) {
          if (key in data) job[key] = data[key];
        }
        if (job.status !== "assembling") job.assembly = null;
        renderJob();
        // Segments move with the job (queued on a render, cancelled on a cancel) without events of
        // their own, and a finished job has a poster: take a snapshot.
        wantSnapshot();
        break;
      default:
        break;
    }
  }

  const connection = $("#connection-status");
  const CONNECTION_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    unauthorized: "Signed out: log in again to follow this job",
    gone: "This job is no longer available",
  };

  function onState(state) {
    connection.dataset.state = state;
    connection.textContent = CONNECTION_TEXT[state] || state;
    if (state !== "live") snapshotInFlight = false;
  }

  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new LiveSocket(`${scheme}://${window.location.host}${config.ws_path}`, { onMessage, onState });

  async function act(button, url, body) {
    actionError.hidden = true;
    button.disabled = true;
    const result = await api("POST", url, body);
    button.disabled = false;
    if (!result.ok) {
      actionError.textContent = (result.data && result.data.detail) || `The request failed (${result.status}).`;
      actionError.hidden = false;
      return;
    }
    applyState(result.data);
  }

  $("#job-render").addEventListener("click", (event) => act(event.currentTarget, config.api.render));
  $("#job-cancel").addEventListener("click", (event) => act(event.currentTarget, config.api.cancel));
  $("#job-retry").addEventListener("click", (event) => act(event.currentTarget, config.api.retry));
  $$("#timeline [data-role=rerender]").forEach((button) => {
    button.addEventListener("click", () =>
      act(button, config.api.segment_rerender.replace("{index}", button.dataset.index)),
    );
  });

  renderJob();
  // A handle for debugging and the browser tests (e.g. drop the socket to watch it come back).
  window.soraWorkspace = { socket, job };
}

const config = readConfig();
if (config && config.page === "new") initNewJob(config);
if (config && config.page === "job") initJobPage(config);
