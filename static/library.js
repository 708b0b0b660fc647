// The job list (the library): render a draft, duplicate a job as a new draft, delete one after asking.
// Search, the status filter and the pages are plain links and a GET form: they work without this module.

import { $, $$, api, confirmAction, errorText, jobUrl, readConfig } from "./common.js";

function initLibrary(config) {
  const error = $("#library-error");
  const announcer = $("#announcer");

  function fail(result) {
    error.textContent = errorText(result);
    error.hidden = false;
  }

  for (const row of $$(".job-row")) {
    const id = row.dataset.jobId;
    const render = $("[data-action=render]", row);
    if (render) {
      render.addEventListener("click", async () => {
        render.disabled = true;
        const result = await api("POST", jobUrl(config.api.render, id));
        if (!result.ok) {
          render.disabled = false;
          fail(result);
          return;
        }
        window.location.assign(jobUrl(config.job_page, id));
      });
    }
    $("[data-action=duplicate]", row).addEventListener("click", async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      const result = await api("POST", jobUrl(config.api.duplicate, id));
      button.disabled = false;
      if (!result.ok) {
        fail(result);
        return;
      }
      window.location.assign(jobUrl(config.job_page, result.data.id));
    });
    $("[data-action=delete]", row).addEventListener("click", async (event) => {
      const button = event.currentTarget;
      const go = await confirmAction({
        title: `Delete “${button.dataset.title}”?`,
        text: "The job, its clips, takes and every version are deleted, and their links stop working. This cannot be undone.",
        confirm: "Delete it",
        testid: "delete",
      });
      if (!go) return;
      button.disabled = true;
      const result = await api("DELETE", jobUrl(config.api.job, id));
      if (!result.ok) {
        button.disabled = false;
        fail(result);
        return;
      }
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      announcer.textContent = `“${button.dataset.title}” was deleted.`;
      const focusable = next && $("a.job-link", next);
      if (focusable) focusable.focus();
      else $("#main").focus();
    });
  }
  document.body.dataset.ready = "true";
}

const config = readConfig();
if (config && config.page === "list") initLibrary(config);
