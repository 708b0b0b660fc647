// The job page: the storyboard after "Render". It applies the socket's snapshot and then its events
// to the cards, and reconnects with backoff after a drop (a reconnect receives a fresh snapshot).
// Progress comes from the server with every event; the page computes none of it.
//
// Iterating in place: a finished segment's clip plays on its card while others still render; "Play the
// finished part" asks the server for the preview so far (GET .../preview/: the finished beginning by
// stream copy); a card's prompt is edited and that card alone re-rendered; a card's takes are compared
// side by side and one is picked (or an earlier one picked back), which assembles a new version. Every
// version keeps its link; a new version never replaces a video that is playing without asking.
//
// Waiting well: elapsed time and an ETA per card and for the job (the median render time of this model's
// recent takes, from the server), progress in the tab title, and a notification when the video is
// ready, once the person allowed it.

import {
  $,
  $$,
  ACTIVE,
  FINISHED,
  api,
  confirmAction,
  errorText,
  formatMoney,
  formatSeconds,
  jobUrl,
  readConfig,
  setBadge,
  statusLabel,
} from "./common.js";
import { initPlanEditor } from "./draftplan.js";

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

// Provider error codes as sentences (the server's table, jobs.error_text, sent in the page config).
function humanError(error, sentences) {
  if (!error) return "";
  const match = /^([a-z][a-z0-9_]{1,60}):\s/.exec(error);
  return (match && sentences[match[1]]) || error;
}

function initJobPage(config) {
  const job = { ...config.job, segments: config.job.segments.map((s) => ({ ...s })), assembly: null };
  const announcer = $("#announcer");
  const actionError = $("#action-error");
  const video = $("#job-video");
  const baseTitle = document.title;
  // The server's clock minus ours, so elapsed times do not depend on the visitor's clock.
  const clockSkew = Date.parse(config.now) - Date.now();
  let runStartedAt = config.started_at ? Date.parse(config.started_at) : null;
  let shownVersion = job.version || 0;
  let pendingVersion = null;
  let snapshotInFlight = false;
  let snapshotAgain = false;
  let snapshots = 0;
  let events = 0;
  let lastAnnouncedTenth = -1;

  const serverNow = () => Date.now() + clockSkew;
  const segmentByIndex = (index) => job.segments.find((s) => s.index === index);
  const cardOf = (index) => $(`#timeline li[data-index="${index}"]`);
  const url = (template, values) =>
    Object.entries(values).reduce((text, [key, value]) => text.replace(`{${key}}`, value), template);

  function announce(text) {
    announcer.textContent = text;
  }

  // A draft's cards are edited in the card editor (draftplan.js) instead of the timeline, which is
  // drawn for the segments the page was served with: once the draft renders, the page is reloaded.
  const planEditor = config.plan
    ? initPlanEditor(config, {
        explain: (text) => humanError(text, config.error_sentences),
        onSaved: (saved) => {
          $("#job-shape").textContent = `${saved.duration_seconds} s in ${saved.segment_count} segment${saved.segment_count === 1 ? "" : "s"}`;
          $("#job-estimate").textContent = formatMoney(Number(saved.cost_estimate_usd));
        },
      })
    : null;
  const editingPlan = () => planEditor !== null && job.status === "draft";

  function applyJob(state) {
    if (!state) return;
    for (const key of ["status", "progress", "version", "output_url", "poster_url"]) {
      if (key in state) job[key] = state[key];
    }
  }

  function absolute(path) {
    return path ? new URL(path, window.location.href).href : "";
  }

  // --- the player and its versions

  function videoInUse() {
    return !video.paused || video.currentTime > 0;
  }

  function playVersion(outputUrl, posterUrl, version) {
    video.src = absolute(outputUrl);
    if (posterUrl) video.poster = absolute(posterUrl);
    video.load();
    shownVersion = version;
    pendingVersion = null;
    $("#new-version").hidden = true;
    $("#download-link").href = absolute(outputUrl);
    $("#playing-version").textContent = version ? `(version ${version})` : "";
    renderVersionsCurrent();
  }

  function syncPlayer() {
    const output = $("#job-output");
    if (!job.output_url) {
      output.hidden = true;
      return;
    }
    output.hidden = false;
    const fresh = absolute(job.output_url);
    if (video.currentSrc === fresh || video.src === fresh) return;
    if (!video.src || !videoInUse()) {
      playVersion(job.output_url, job.poster_url, job.version);
      return;
    }
    // Someone is watching: offer the new version instead of swapping the video under them.
    pendingVersion = { output_url: job.output_url, poster_url: job.poster_url, version: job.version };
    const banner = $("#new-version");
    $("[data-role=text]", banner).textContent = `Version ${job.version} is ready.`;
    $("button", banner).textContent = `Play version ${job.version}`;
    banner.hidden = false;
  }

  let versionsSeq = 0;
  async function loadVersions() {
    const seq = ++versionsSeq;
    const result = await api("GET", config.api.versions);
    if (seq !== versionsSeq || !result.ok) return;
    const list = $("#versions");
    list.replaceChildren(
      ...result.data.map((v) => {
        const item = document.createElement("li");
        item.dataset.version = String(v.number);
        item.dataset.testid = `version-${v.number}`;
        const open = document.createElement("a");
        open.href = v.video_url;
        open.textContent = `Version ${v.number}`;
        open.dataset.testid = `version-${v.number}-link`;
        const meta = document.createElement("span");
        meta.className = "muted";
        meta.dataset.role = "meta";
        const when = new Date(v.created_at);
        meta.textContent = ` · ${v.duration_seconds.toFixed(1)} s · takes ${v.takes.join(", ")} · ${when.toLocaleString()}`;
        const download = document.createElement("a");
        download.href = v.download_url;
        download.setAttribute("download", "");
        download.className = "button secondary small";
        download.textContent = "Download";
        download.setAttribute("aria-label", `Download version ${v.number}`);
        download.dataset.testid = `version-${v.number}-download`;
        const play = document.createElement("button");
        play.type = "button";
        play.className = "secondary small";
        play.textContent = "Play here";
        play.setAttribute("aria-label", `Play version ${v.number} here`);
        play.dataset.testid = `version-${v.number}-play`;
        play.addEventListener("click", () => {
          playVersion(v.video_url, v.poster_url, v.number);
          video.focus();
        });
        const badge = document.createElement("span");
        badge.className = "muted";
        badge.dataset.role = "playing";
        item.append(open, meta, badge, " ", play, " ", download);
        return item;
      }),
    );
    renderVersionsCurrent();
  }

  function renderVersionsCurrent() {
    $$("#versions li").forEach((item) => {
      const playing = Number(item.dataset.version) === shownVersion;
      $("[data-role=playing]", item).textContent = playing ? " · playing" : "";
      if (playing) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    });
  }

  // --- time: elapsed and ETA

  function segmentRemaining(segment, elapsed) {
    const typical = config.eta.segment_seconds;
    if (!typical) return null;
    if (job.continuity === "chain" || job.continuity === "bridge") {
      // Serial: this card waits for the unfinished cards before it.
      const before = job.segments.filter((s) => s.index < segment.index && !FINISHED.has(s.status)).length;
      return Math.max(0, typical * (before + 1) - elapsed);
    }
    return Math.max(0, typical - elapsed);
  }

  function renderTiming() {
    const jobLine = $("#job-timing");
    const active = ACTIVE.has(job.status);
    if (!active || runStartedAt === null) {
      jobLine.textContent = "";
      for (const s of job.segments) $("[data-role=timing]", cardOf(s.index)).textContent = "";
      return;
    }
    const elapsed = (serverNow() - runStartedAt) / 1000;
    const waiting = job.segments.filter((s) => s.status === "queued" || s.status === "rendering");
    let jobLeft = null;
    for (const s of job.segments) {
      const cell = $("[data-role=timing]", cardOf(s.index));
      if (s.status !== "queued" && s.status !== "rendering") {
        cell.textContent = "";
        continue;
      }
      const left = segmentRemaining(s, elapsed);
      jobLeft = left === null ? null : Math.max(jobLeft ?? 0, left);
      cell.textContent =
        `${formatSeconds(elapsed)} elapsed` +
        (left === null ? "" : left > 0 ? ` · about ${formatSeconds(left)} left` : " · taking longer than usual");
    }
    let text = `${formatSeconds(elapsed)} elapsed`;
    if (!config.eta.segment_seconds) {
      text += " · no estimate yet for this model";
    } else if (waiting.length && jobLeft !== null) {
      text += jobLeft > 0 ? ` · about ${formatSeconds(jobLeft)} left` : " · taking longer than usual";
    } else if (job.status === "assembling") {
      text += " · joining the clips";
    }
    jobLine.textContent = text;
  }

  function renderTitle() {
    const name = job.title || baseTitle;
    const progress = Math.round(job.progress || 0);
    if (ACTIVE.has(job.status)) document.title = `${progress}% · ${statusLabel(job.status)} · ${name}`;
    else if (job.status === "completed") document.title = `Ready · ${name}`;
    else document.title = `${statusLabel(job.status)} · ${name}`;
  }

  // --- rendering the page from `job`

  function renderJob() {
    setBadge($("#job-status"), job.status);
    const progress = Math.max(0, Math.min(100, job.progress || 0));
    $("#job-progress").value = progress;
    $("#job-progress").textContent = `${progress.toFixed(0)}%`;
    $("#job-progress-text").textContent = `${progress.toFixed(0)}%`;
    const error = $("#job-error");
    error.textContent = humanError(job.error, config.error_sentences);
    error.hidden = !job.error;
    $("#job-render").hidden = !(job.status === "draft" || job.status === "cancelled");
    $("#job-cancel").hidden = !ACTIVE.has(job.status);
    $("#job-retry").hidden = job.status !== "failed";
    const notify = $("#job-notify");
    notify.hidden = !("Notification" in window) || Notification.permission !== "default" || FINISHED.has(job.status);
    const assembly = $("#assembly-status");
    assembly.hidden = job.status !== "assembling";
    assembly.textContent =
      job.assembly === null ? "Joining the clips…" : `Joining the clips: ${job.assembly.toFixed(0)}%`;
    syncPlayer();
    for (const segment of job.segments) renderSegment(segment);
    const finishedFirst = job.segments.some((s) => s.index === 0 && s.status === "completed");
    $("#preview-box").hidden = !finishedFirst;
    renderTiming();
    renderTitle();
  }

  function renderSegment(segment) {
    const item = cardOf(segment.index);
    if (!item) return;
    item.dataset.status = segment.status;
    setBadge($("[data-role=status]", item), segment.status);
    const progress = $("[data-role=progress]", item);
    progress.value = segment.progress || 0;
    progress.textContent = `${(segment.progress || 0).toFixed(0)}%`;
    const parts = [];
    if (segment.attempts > 1) parts.push(`attempt ${segment.attempts}`);
    if (segment.rendered_by && segment.rendered_by !== config.job_model) parts.push(`rendered by ${segment.rendered_by}`);
    if (segment.status === "rendering") {
      parts.push(`${(segment.progress || 0).toFixed(0)}%`);
      if (segment.provider_status) parts.push(segment.provider_status.replace(/_/g, " "));
    }
    $("[data-role=detail]", item).textContent = parts.join(" · ");
    $("[data-role=take]", item).textContent = segment.take ? `· take ${segment.take}` : "";
    if (typeof segment.prompt === "string") $("[data-role=prompt]", item).textContent = segment.prompt;
    const error = $("[data-role=error]", item);
    error.textContent = humanError(segment.error, config.error_sentences);
    // A completed segment's "error" is only the reason for an earlier retry; do not alarm anyone.
    error.hidden = !segment.error || segment.status === "completed";

    // The clip plays on its card as soon as it exists, whatever the other cards are doing; a clip being
    // watched is not swapped for a new take under the person.
    const clip = $("[data-role=clip]", item);
    const thumb = $("[data-role=thumb]", item);
    const placeholder = $(".thumb-placeholder", item);
    if (segment.clip_url) {
      const src = absolute(segment.clip_url);
      if (clip.src !== src && (clip.paused || !clip.src)) {
        clip.src = src;
        if (segment.thumbnail_url) clip.poster = absolute(segment.thumbnail_url);
      }
      clip.hidden = false;
      thumb.hidden = true;
      placeholder.hidden = true;
    } else {
      clip.hidden = true;
      if (!clip.paused) clip.pause();
      if (segment.thumbnail_url) {
        const src = absolute(segment.thumbnail_url);
        if (thumb.src !== src) thumb.src = src;
        thumb.hidden = false;
        placeholder.hidden = true;
      } else {
        thumb.hidden = true;
        placeholder.hidden = false;
      }
    }
    const settled = !ACTIVE.has(job.status);
    const rendered = settled && job.status !== "draft";
    $("[data-role=rerender]", item).hidden = !rendered;
    $("[data-role=edit]", item).hidden = !settled || segment.status === "rendering";
    $("[data-role=edit]", item).textContent = job.status === "draft" ? "Edit prompt" : "Edit and re-render";
    $("[data-role=editor-save]", item).textContent = job.status === "draft" ? "Save prompt" : "Save and re-render";
    $("[data-role=takes-toggle]", item).hidden = !(segment.take > 1 || (segment.take >= 1 && rendered));
  }

  // A fresh snapshot (or an API response, which has the same fields) replaces what we know.
  function applyState(state) {
    const before = new Map(job.segments.map((s) => [s.index, s.status]));
    const wasStatus = job.status;
    for (const key of ["status", "progress", "error", "output_url", "poster_url", "title", "version"]) {
      if (key in state) job[key] = state[key];
    }
    if (Array.isArray(state.segments)) {
      job.segments = state.segments.map((s) => ({ ...s }));
      // Segments this page has never drawn: only a reload shows them (a draft's cards are the editor's).
      if (planEditor ? !editingPlan() : state.segments.some((s) => !cardOf(s.index))) {
        window.location.reload();
        return;
      }
    }
    if (job.status !== "assembling") job.assembly = null;
    statusChanged(wasStatus);
    renderJob();
    for (const s of job.segments) {
      if (before.get(s.index) !== s.status && (s.status === "completed" || s.status === "failed")) {
        announce(`Segment ${s.index + 1} ${statusLabel(s.status).toLowerCase()}.`);
      }
    }
  }

  // Things that happen once when the job moves: the run's clock, the versions, the notification.
  function statusChanged(previous) {
    if (previous === job.status) return;
    if (!ACTIVE.has(previous) && ACTIVE.has(job.status)) runStartedAt = serverNow();
    if (job.status === "completed") {
      announce("The video is ready.");
      loadVersions();
      if (ACTIVE.has(previous)) notifyReady();
    } else if (FINISHED.has(job.status)) {
      announce(`The job is ${statusLabel(job.status).toLowerCase()}.`);
    }
  }

  // The live region announces progress in tenths, not at every event (a screen reader would drown).
  function announceProgress() {
    const tenth = Math.floor((job.progress || 0) / 10);
    if (ACTIVE.has(job.status) && tenth !== lastAnnouncedTenth && tenth > 0 && tenth < 10) {
      lastAnnouncedTenth = tenth;
      announce(`${tenth * 10}% rendered.`);
    }
  }

  function notifyReady() {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const note = new Notification("Your video is ready", { body: job.title || "Sora Controller", tag: job.id });
      note.onclick = () => window.focus();
    } catch {
      // Some browsers only allow notifications from a service worker; the page and title still say so.
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
        const wasStatus = job.status;
        Object.assign(segment, data);
        applyJob(message.job);
        statusChanged(wasStatus);
        renderJob();
        if (previous !== data.status && (data.status === "completed" || data.status === "failed")) {
          announce(`Segment ${data.index + 1} ${statusLabel(data.status).toLowerCase()}.`);
        } else {
          announceProgress();
        }
        break;
      }
      case "job-assembly":
        job.assembly = data.progress;
        applyJob(message.job);
        renderJob();
        break;
      case "job-status": {
        const wasStatus = job.status;
        for (const key of ["status", "progress", "output_url", "poster_url", "error", "version"]) {
          if (key in data) job[key] = data[key];
        }
        if (job.status !== "assembling") job.assembly = null;
        statusChanged(wasStatus);
        renderJob();
        wantSnapshot();
        break;
      }
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

  // --- actions

  function showActionError(text) {
    actionError.textContent = text;
    actionError.hidden = false;
  }

  async function act(button, method, target, body) {
    actionError.hidden = true;
    button.disabled = true;
    const result = await api(method, target, body);
    button.disabled = false;
    if (!result.ok) {
      showActionError(errorText(result));
      return null;
    }
    if (result.data && result.data.segments) applyState(result.data);
    return result;
  }

  $("#job-render").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    if (!planEditor) {
      act(button, "POST", config.api.render);
      return;
    }
    // The cards on the page are what renders: unsaved changes are saved first.
    if (!(await planEditor.saveIfDirty())) return;
    if (await act(button, "POST", config.api.render)) window.location.reload();
  });
  $("#job-retry").addEventListener("click", (event) => act(event.currentTarget, "POST", config.api.retry));
  $("#job-cancel").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const go = await confirmAction({
      title: "Cancel this render?",
      text: "Segments still rendering are stopped and are not kept; finished segments stay. You can start the render again later.",
      confirm: "Cancel the render",
      cancel: "Keep rendering",
      testid: "cancel",
    });
    if (go) await act(button, "POST", config.api.cancel);
  });
  $("#job-delete").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const go = await confirmAction({
      title: "Delete this video?",
      text: "The job, its clips, takes and every version are deleted. Download links stop working. This cannot be undone.",
      confirm: "Delete it",
      testid: "delete",
    });
    if (!go) return;
    button.disabled = true;
    const result = await api("DELETE", config.api.job);
    if (!result.ok) {
      button.disabled = false;
      showActionError(errorText(result));
      return;
    }
    window.location.assign(config.list_url);
  });
  $("#job-duplicate").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    const result = await api("POST", config.api.duplicate);
    button.disabled = false;
    if (!result.ok) {
      showActionError(errorText(result));
      return;
    }
    window.location.assign(jobUrl(config.job_page, result.data.id));
  });
  $("#job-notify").addEventListener("click", async () => {
    const answer = await Notification.requestPermission();
    announce(answer === "granted" ? "You will get a notification when the video is ready." : "Notifications are off.");
    renderJob();
  });
  $("#new-version button").addEventListener("click", () => {
    if (!pendingVersion) return;
    playVersion(pendingVersion.output_url, pendingVersion.poster_url, pendingVersion.version);
    video.play().catch(() => {});
  });
  $("#preview-button").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const statusLine = $("#preview-status");
    statusLine.textContent = "Joining the finished segments…";
    button.disabled = true;
    const result = await api("GET", config.api.preview);
    button.disabled = false;
    if (!result.ok) {
      statusLine.textContent = errorText(result);
      return;
    }
    const p = result.data;
    if (!p.available) {
      statusLine.textContent = "Nothing has finished from the start yet.";
      return;
    }
    const player = $("#preview-video");
    player.src = p.video_url;
    player.hidden = false;
    statusLine.textContent = `Segments 1–${p.segments} of ${p.segment_count} (${p.duration_seconds.toFixed(1)} s).`;
    statusLine.dataset.segments = String(p.segments);
    button.textContent = "Update the preview";
  });

  for (const item of $$("#timeline li.segment")) {
    const index = Number(item.dataset.index);
    const editor = $("[data-role=editor]", item);
    const input = $("[data-role=editor-input]", item);
    const editButton = $("[data-role=edit]", item);
    const editorError = $("[data-role=editor-error]", item);
    const takesButton = $("[data-role=takes-toggle]", item);
    const takesPanel = $("[data-role=takes]", item);

    $("[data-role=rerender]", item).addEventListener("click", (event) =>
      act(event.currentTarget, "POST", url(config.api.segment_rerender, { index })),
    );
    editButton.addEventListener("click", () => {
      const open = editor.hidden;
      editor.hidden = !open;
      editButton.setAttribute("aria-expanded", String(open));
      if (open) {
        input.value = segmentByIndex(index).prompt;
        input.focus();
      }
    });
    $("[data-role=editor-cancel]", item).addEventListener("click", () => {
      editor.hidden = true;
      editButton.setAttribute("aria-expanded", "false");
      editButton.focus();
    });
    input.addEventListener("input", () => {
      if (input.value.trim()) {
        editorError.hidden = true;
        input.removeAttribute("aria-invalid");
      }
    });
    $("[data-role=editor-save]", item).addEventListener("click", async (event) => {
      const button = event.currentTarget;
      if (!input.value.trim()) {
        editorError.textContent = "Write what happens in this segment.";
        editorError.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      button.disabled = true;
      const saved = await api("PATCH", url(config.api.segment, { index }), { prompt: input.value });
      button.disabled = false;
      if (!saved.ok) {
        editorError.textContent = errorText(saved);
        editorError.hidden = false;
        input.setAttribute("aria-invalid", "true");
        return;
      }
      Object.assign(segmentByIndex(index), { prompt: saved.data.prompt });
      editor.hidden = true;
      editButton.setAttribute("aria-expanded", "false");
      if (job.status === "draft") {
        renderJob();
        announce(`Segment ${index + 1}'s prompt is saved.`);
        editButton.focus();
        return;
      }
      const started = await act(button, "POST", url(config.api.segment_rerender, { index }));
      if (started) announce(`Segment ${index + 1} is rendering again with its new prompt.`);
    });

    takesButton.addEventListener("click", async () => {
      const open = takesPanel.hidden;
      takesPanel.hidden = !open;
      takesButton.setAttribute("aria-expanded", String(open));
      // An open card takes the timeline's whole width, so its takes sit side by side.
      item.classList.toggle("takes-open", open);
      if (open) await loadTakes(index, item);
    });
  }

  async function loadTakes(index, item) {
    const list = $("[data-role=take-list]", item);
    const result = await api("GET", url(config.api.takes, { index }));
    if (!result.ok) {
      showActionError(errorText(result));
      return;
    }
    const settled = !ACTIVE.has(job.status);
    list.replaceChildren(
      ...result.data.map((take) => {
        const entry = document.createElement("li");
        entry.className = "take";
        entry.dataset.testid = `segment-${index}-take-${take.number}`;
        if (take.picked) entry.classList.add("picked");
        const player = document.createElement("video");
        player.controls = true;
        player.preload = "metadata";
        player.playsInline = true;
        player.src = take.clip_url;
        if (take.thumbnail_url) player.poster = take.thumbnail_url;
        player.setAttribute("aria-label", `Take ${take.number} of segment ${index + 1}`);
        const caption = document.createElement("p");
        caption.className = "take-caption";
        caption.textContent = `Take ${take.number}${take.picked ? " (in the video)" : ""}: ${take.prompt}`;
        const pick = document.createElement("button");
        pick.type = "button";
        pick.className = take.picked ? "secondary small" : "primary small";
        pick.disabled = take.picked || !settled;
        pick.textContent = take.picked ? "In use" : "Use this take";
        pick.setAttribute("aria-label", take.picked ? `Take ${take.number} is in use` : `Use take ${take.number} of segment ${index + 1}`);
        pick.dataset.testid = `segment-${index}-take-${take.number}-pick`;
        pick.addEventListener("click", async () => {
          const previous = result.data.find((t) => t.picked);
          const done = await act(pick, "POST", url(config.api.pick, { index, number: take.number }));
          if (!done) return;
          announce(
            `Segment ${index + 1} now uses take ${take.number}; a new version is being assembled.` +
              (previous ? ` To go back, use take ${previous.number}.` : ""),
          );
          await loadTakes(index, item);
        });
        entry.append(player, caption, pick);
        return entry;
      }),
    );
  }

  renderJob();
  if (job.version) loadVersions();
  setInterval(renderTiming, 1000);
  // A handle for debugging and the browser tests (e.g. drop the socket to watch it come back).
  window.soraWorkspace = { socket, job };
}

const config = readConfig();
if (config && config.page === "job") initJobPage(config);
