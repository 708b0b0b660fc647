// A saved draft's cards on its job page: the same card editor as the new-video page (cards.js), saved
// in one request (PUT .../plan/). The server plans the cards exactly as a new job with them (limits,
// the model's clip lengths, budget caps) and answers field by field: a card's problem shows on that
// card and goes as soon as the card is fixed. Each card remembers the saved segment it came from
// (`source`), so the server moves that segment's reference images with it; a removed card's images
// are deleted. Images picked for cards here are uploaded once the plan is saved, to their new places.

import { $, $$, api, errorText, formatMoney, plural } from "./common.js";
import { createCardEditor, createEstimator, planSummary, uploadCardImages } from "./cards.js";

// `explain(text)`: a provider's error code as a sentence (the server's table, jobs.error_text).
export function initPlanEditor(config, { explain, onSaved }) {
  const plan = config.plan;
  const section = $("#plan-editor");
  const status = $("#plan-status");
  const summary = $("#plan-errors");
  const saveButton = $("#save-plan");
  let dirty = false;

  const announce = (text) => {
    status.textContent = text;
  };

  const editor = createCardEditor({
    list: $("#cards"),
    template: $("#card-template"),
    maxCards: plan.max_cards,
    hintId: "storyboard-hint",
    uploadMaxBytes: plan.upload_max_bytes,
    announce,
    onChange: () => {
      dirty = true;
      section.dataset.dirty = "true";
      syncDuration();
      estimator.schedule();
    },
    onRender: () => {
      $("#add-card").disabled = editor.cards.length >= plan.max_cards;
      syncDuration();
    },
    onErrorCleared: () => pruneSummary(),
  });

  // jobs.plan_edit.cards_duration: one segment length per card (the model's lengths may snap it).
  const duration = () => Math.round(editor.cards.length * plan.segment_seconds * 1000) / 1000;

  function syncDuration() {
    $("#plan-duration").textContent = `${duration()} s in ${plural(editor.cards.length, "card")} (follows the cards)`;
  }

  const estimator = createEstimator({
    url: config.api.estimate,
    element: section,
    body: () => ({
      ...plan.estimate,
      duration_seconds: duration(),
      // An empty card is priced as a card; Save plan asks for its prompt.
      segments: editor.cards.map((card, i) => ({ prompt: card.prompt.trim() || `Card ${i + 1}` })),
    }),
    onResult: (result) => {
      if (!result.ok) {
        $("#cards-cost").textContent = "—";
        $("#cards-cost-detail").textContent = explain(errorText(result));
        return;
      }
      $("#cards-cost").textContent = formatMoney(Number(result.data.cost_usd));
      $("#cards-cost-detail").textContent = planSummary(result.data);
      editor.showTimes(result.data);
    },
  });

  // The cards of a job as the API or the page's config gives them, each with the newest image bound to
  // its segment (the one a render uses).
  function cardsOf(job) {
    return job.segments.map((segment) => {
      const images = job.reference_images.filter((image) => image.segment_index === segment.index);
      const newest = images[images.length - 1];
      return {
        prompt: segment.prompt,
        source: segment.index,
        image: newest ? { url: newest.url, server: true } : null,
      };
    });
  }

  function load(items) {
    editor.fill(items);
    dirty = false;
    section.dataset.dirty = "false";
    estimator.schedule(); // the time ranges and the price of the cards as saved
  }

  // --- errors: on the card they name, and all of them in a list at the top

  function cardIndex(field) {
    const match = /^segments\.(\d+)(\.|$)/.exec(field);
    return match && editor.cards[Number(match[1])] ? Number(match[1]) : null;
  }

  function clearErrors() {
    summary.hidden = true;
    summary.replaceChildren();
    const general = $("#error-segments");
    general.hidden = true;
    general.textContent = "";
    for (const card of editor.cards) {
      if (!editor.errorOf(card).hidden) editor.clearCardError(card);
    }
  }

  function pruneSummary() {
    $$("li[data-card]", summary).forEach((item) => {
      const card = editor.cards.find((c) => String(c.uid) === item.dataset.card);
      if (!card || editor.errorOf(card).hidden) item.remove();
    });
    if (!$("li", summary)) {
      summary.hidden = true;
      summary.replaceChildren();
    }
  }

  function showErrors(errors, headline = "The plan was not saved. Please fix the following:") {
    const items = [];
    const general = [];
    for (const [field, messages] of Object.entries(errors)) {
      const text = messages.map(explain).join(" ");
      const index = cardIndex(field);
      const item = document.createElement("li");
      if (index === null) {
        const name = field === "segments" ? "Cards" : field === "non_field_errors" ? "" : field.replace(/_/g, " ");
        general.push(name ? `${name[0].toUpperCase()}${name.slice(1)}: ${text}` : text);
        item.textContent = general[general.length - 1];
      } else {
        const card = editor.cards[index];
        editor.setCardError(card, text);
        item.dataset.card = String(card.uid);
        const link = document.createElement("a");
        link.href = `#${editor.promptOf(card).id}`;
        link.textContent = `Card ${index + 1}: ${text}`;
        item.append(link);
      }
      items.push(item);
    }
    const element = $("#error-segments");
    element.textContent = general.join(" ");
    element.hidden = !general.length;
    const heading = document.createElement("p");
    heading.textContent = headline;
    const list = document.createElement("ul");
    list.append(...items);
    summary.replaceChildren(heading, list);
    summary.hidden = false;
    summary.focus();
  }

  function blankCards() {
    const errors = {};
    editor.cards.forEach((card, index) => {
      if (!card.prompt.trim()) errors[`segments.${index}.prompt`] = [`Card ${index + 1} needs a prompt.`];
    });
    return errors;
  }

  // --- saving

  function busy(on, message = "") {
    saveButton.disabled = on;
    section.setAttribute("aria-busy", on ? "true" : "false");
    if (message) announce(message);
  }

  // Saves the cards; true once the server holds them (and the picked images).
  async function save() {
    clearErrors();
    const local = blankCards();
    if (Object.keys(local).length) {
      showErrors(local);
      return false;
    }
    busy(true, "Saving the plan…");
    const body = { segments: editor.cards.map((card) => ({ prompt: card.prompt, source: card.source })) };
    const saved = await api("PUT", config.api.plan, body);
    if (!saved.ok) {
      busy(false, "");
      announce("");
      if (saved.status === 400 && saved.data.errors) showErrors(saved.data.errors);
      else showErrors({ non_field_errors: [errorText(saved)] });
      return false;
    }
    let job = saved.data;
    const picked = editor.cards.filter((card) => card.image && card.image.file);
    const refused = picked.length ? await uploadCardImages(editor.cards, config.api.reference_images) : null;
    if (picked.length) {
      const fresh = await api("GET", config.api.job);
      if (fresh.ok) job = fresh.data;
    }
    load(cardsOf(job));
    busy(false, `The plan is saved: ${plural(job.segments.length, "card")}, ${job.duration_seconds} s.`);
    onSaved(job);
    if (refused) {
      showErrors(
        { [`segments.${refused.index}.image`]: [errorText(refused.result)] },
        "The plan is saved, but a card's image was refused:",
      );
      return false;
    }
    return true;
  }

  saveButton.addEventListener("click", () => save());
  $("#add-card").addEventListener("click", () => editor.addCard());
  load(plan.cards.map((c) => ({ ...c, image: c.image_url ? { url: c.image_url, server: true } : null })));
  section.dataset.ready = "true";
  // A handle for the browser tests.
  window.soraStoryboard = { cards: () => editor.cards.map((c) => c.prompt) };

  return {
    get dirty() {
      return dirty;
    },
    // Before a render: the cards on the page are what renders.
    async saveIfDirty() {
      return dirty ? save() : true;
    },
  };
}
