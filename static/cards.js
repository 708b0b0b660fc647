// The card editor both storyboards share: the new-video page (storyboard.js) before a job exists, and a
// saved draft's page (draftplan.js). Cards are edited, reordered (drag by the handle, Move buttons,
// Alt+Arrow keys in the card, Arrow keys on the handle), added, split, merged and removed; each card
// may carry a reference image that moves with it. The page decides what a change means (the duration,
// the estimate, saving) through the callbacks.
//
// A card: {uid, prompt, source, image, node}. `source` is the index of the saved segment the card came
// from (null for a new card, and always on the new-video page); `image` is a picked file
// ({file, url}) or an image the server already holds for the card's segment ({url, server: true}).

import { $, api, formatMoney, plural } from "./common.js";

export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];
export const ESTIMATE_DEBOUNCE_MS = 250;
// A sentence ends at . ! ? (or their CJK forms), keeping the mark and what follows up to the next one.
const SENTENCE = /[^.!?。！？]+[.!?。！？]*["'”’)]*\s*/g;

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

// A picked image checked in the browser before anything is sent: "" when fine, else why not.
export async function checkImage(file, maxBytes) {
  if (!IMAGE_TYPES.includes(file.type)) return `“${file.name}” is not a PNG, JPEG or WebP image.`;
  if (file.size > maxBytes) {
    return `“${file.name}” is larger than ${(maxBytes / 1048576).toFixed(0)} MB.`;
  }
  try {
    const bitmap = await createImageBitmap(file);
    bitmap.close();
  } catch {
    return `“${file.name}” is not a readable PNG, JPEG or WebP image.`;
  }
  return "";
}

// The server's plan (POST /api/estimate/) in one line of words.
export function planSummary(plan) {
  const price = Number(plan.price_per_second);
  const perSecond = price ? ` at ${formatMoney(price)}/s` : " (free)";
  let text = `${plural(plan.segments.length, "segment")}, ${plan.billed_seconds} s billed for ${plan.planned_seconds} s shown${perSecond}`;
  if (plan.trimmed_seconds > 0) text += `; ${plan.trimmed_seconds} s trimmed`;
  return text;
}

// Prices the cards on the server after each change, once changes pause; only the newest answer is shown.
// `element.dataset.estimating` says whether a price is on its way (the browser tests wait on it).
export function createEstimator({ url, body, element, onResult }) {
  let timer = null;
  let seq = 0;
  async function run() {
    const mine = ++seq;
    element.dataset.estimating = "true";
    const result = await api("POST", url, body());
    if (mine !== seq) return; // a newer change is being priced
    element.dataset.estimating = "false";
    onResult(result);
  }
  return {
    schedule() {
      clearTimeout(timer);
      // Estimating from the change on, not from the request: the figures shown are stale while the
      // debounce waits, and a reader (or a test) waiting for them to settle must wait for this one too.
      element.dataset.estimating = "true";
      timer = setTimeout(run, ESTIMATE_DEBOUNCE_MS);
    },
    now: run,
  };
}

// Attach each card's picked image to segment `index` of a stored job, in order. Returns null when all
// went up, else {index, result} of the first refusal.
export async function uploadCardImages(cards, url) {
  for (const [index, card] of cards.entries()) {
    if (!card.image || !card.image.file) continue;
    const upload = new FormData();
    upload.append("image", card.image.file);
    upload.append("segment_index", String(index));
    const added = await api("POST", url, upload);
    if (!added.ok) return { index, result: added };
  }
  return null;
}

export function createCardEditor({
  list,
  template,
  maxCards,
  hintId,
  uploadMaxBytes,
  announce,
  onChange = () => {},
  onRender = () => {},
  onErrorCleared = () => {},
}) {
  let cards = [];
  let nextUid = 1;
  let drag = null; // {card, target}: a card being dragged by its handle
  // The last plan the server priced: its slots label the cards by position until the next one arrives.
  let lastPlan = null;

  function changed() {
    labelTimes(); // time ranges are positional: a moved card takes its new slot's range at once
    onChange();
  }

  function cardNode(card) {
    const node = template.content.firstElementChild.cloneNode(true);
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
      const target = under && under.closest("li[data-role=card]");
      if (drag.target && drag.target !== target) drag.target.classList.remove("drop-target");
      drag.target = target && target !== node && list.contains(target) ? target : null;
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

  function newCard({ prompt, source = null, image = null }) {
    const card = { uid: nextUid++, prompt, source, image, node: null };
    card.node = cardNode(card);
    showImage(card);
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
      prompt.setAttribute("aria-describedby", `${error.id} ${hintId}`);
      const label = $("[data-role=prompt-label]", node);
      label.htmlFor = prompt.id;
      label.textContent = `Prompt for card ${n}`;
      const imageInput = $("[data-role=image]", node);
      imageInput.id = `card-image-${card.uid}`;
      imageInput.dataset.testid = `card-${index}-image`;
      const imageLabel = $("[data-role=image-label]", node);
      imageLabel.htmlFor = imageInput.id;
      imageLabel.textContent = `Reference image for card ${n} (optional)`;
      const preview = $("[data-role=image-preview]", node);
      preview.dataset.testid = `card-${index}-image-preview`;
      preview.alt = card.image
        ? `Reference image ${card.image.server ? "of" : "chosen for"} card ${n}`
        : "";
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
    if (focused && document.activeElement !== focused && document.contains(focused)) focused.focus();
    onRender();
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

  // The second half is a new card: the image (and the saved segment's images) stay on the first.
  function splitCard(card) {
    if (cards.length >= maxCards) return;
    const [first, second] = splitPrompt(card.prompt);
    card.prompt = first;
    $("[data-role=prompt]", card.node).value = first;
    const index = cards.indexOf(card);
    const added = newCard({ prompt: second });
    cards.splice(index + 1, 0, added);
    renderCards();
    $("[data-role=prompt]", added.node).focus();
    announce(`Card ${index + 1} split in two; there are ${cards.length} cards.`);
    changed();
  }

  // The merged card keeps its own image, or takes the next card's when it has none (with the saved
  // segment it came from, so the server keeps that segment's images on the merged card).
  function mergeCard(card) {
    const index = cards.indexOf(card);
    const next = cards[index + 1];
    if (!next) return;
    card.prompt = [card.prompt.trim(), next.prompt.trim()].filter(Boolean).join(" ");
    $("[data-role=prompt]", card.node).value = card.prompt;
    if (!card.image && next.image) {
      card.image = next.image;
      card.source = next.source;
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
    if (card.image && card.image.file) URL.revokeObjectURL(card.image.url);
    renderCards();
    const neighbour = cards[Math.min(index, cards.length - 1)];
    $("[data-role=prompt]", neighbour.node).focus();
    announce(`Card ${index + 1} removed; there are ${cards.length} cards.`);
    changed();
  }

  function addCard() {
    if (cards.length >= maxCards) return;
    const card = newCard({ prompt: "" });
    cards.push(card);
    renderCards();
    $("[data-role=prompt]", card.node).focus();
    announce(`Card ${cards.length} added.`);
    changed();
  }

  // A card's image area: the preview of its image; the file input only while it has none held by the
  // server (a picked file can still be swapped for another).
  function showImage(card) {
    const img = $("[data-role=image-preview]", card.node);
    img.hidden = !card.image;
    if (card.image) img.src = card.image.url;
    else img.removeAttribute("src");
    const held = Boolean(card.image && card.image.server);
    $("[data-role=image]", card.node).hidden = held;
    $("[data-role=image-label]", card.node).hidden = held;
    const note = $("[data-role=image-note]", card.node);
    if (note) note.hidden = !held;
  }

  function copyImageInput(from, to) {
    const transfer = new DataTransfer();
    if (from.image && from.image.file) transfer.items.add(from.image.file);
    $("[data-role=image]", to.node).files = transfer.files;
    showImage(to);
  }

  async function onCardImage(card, input) {
    const file = input.files[0];
    if (card.image && card.image.file) URL.revokeObjectURL(card.image.url);
    card.image = null;
    showImage(card);
    clearCardError(card);
    if (!file) return;
    const problem = await checkImage(file, uploadMaxBytes);
    if (problem) {
      setCardError(card, problem);
      input.value = "";
      return;
    }
    card.image = { file, url: URL.createObjectURL(file) };
    showImage(card);
    $("[data-role=image-preview]", card.node).alt = `Reference image chosen for card ${cards.indexOf(card) + 1}`;
    onChange();
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
    onErrorCleared(card);
  }

  function labelTimes() {
    if (!lastPlan) return;
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

  return {
    get cards() {
      return cards;
    },
    get maxCards() {
      return maxCards;
    },
    // Replace every card: items are {prompt, source?, image?}.
    fill(items) {
      for (const card of cards) if (card.image && card.image.file) URL.revokeObjectURL(card.image.url);
      cards = items.map((item) => newCard(item));
      lastPlan = null;
      renderCards();
    },
    addCard,
    changed,
    showTimes(plan) {
      lastPlan = plan;
      labelTimes();
    },
    setCardError,
    clearCardError,
    promptOf: (card) => $("[data-role=prompt]", card.node),
    errorOf: (card) => $("[data-role=error]", card.node),
  };
}
