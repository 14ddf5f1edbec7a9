// The deploy wizard (templates/pods/partials/deploy_form.html). A change asks the server for the
// parts that depend on the answers (GPU grid, counts, review, errors: deploy_live.html) and htmx
// swaps only those, out of band. Inputs are never re-rendered, so whatever is typed while a
// request is in flight stays. Choosing a template and adding or removing environment rows happen
// here, at once, for the same reason; without JavaScript the form's buttons do both on the server.
(function () {
  "use strict";

  const form = document.getElementById("wizard");
  if (!form) return;
  const TYPING_PAUSE_MS = 300;
  const rows = form.querySelector("[data-env-rows]");
  const rowTemplate = document.getElementById("wizard-env-row");
  const maxRows = Number(form.dataset.maxEnvRows);
  const presets = JSON.parse(document.getElementById("wizard-templates").textContent);
  let pending = null;
  let deploying = null; // the submit event of the Deploy under way
  let inFlight = false;
  let stale = false;

  function refresh() {
    clearTimeout(pending);
    if (!deploying) htmx.trigger(form, "wizard-refresh");
  }

  function refreshAfterTyping() {
    clearTimeout(pending);
    pending = setTimeout(refresh, TYPING_PAUSE_MS);
  }

  function isTyped(element) {
    return element.matches("input[type=text], input:not([type]), textarea");
  }

  // Show the parts that apply to the current choices; disabled inputs are not posted.
  function toggleSections() {
    const compute = form.elements.compute.value;
    form.querySelectorAll("[data-compute]").forEach((part) => {
      part.hidden = part.dataset.compute !== compute;
    });
    const spot = form.elements.pricing.value === "spot";
    form.querySelectorAll("[data-pricing]").forEach((part) => { part.hidden = !spot; });
    form.elements.bid_per_gpu.disabled = !spot;
    form.elements.volume_gb.disabled = form.elements.network_volume.value !== "";
  }

  // Rows are env_key_<i>/env_value_<i>, numbered from 0 in order, as the server reads them.
  function renumber() {
    const all = rows.querySelectorAll("[data-env-row]");
    all.forEach((row, i) => {
      row.querySelectorAll("[name], [id], [data-errors-for], [data-error-for]").forEach((el) => {
        for (const attribute of ["name", "id", "data-errors-for", "data-error-for"]) {
          const value = el.getAttribute(attribute);
          if (value) el.setAttribute(attribute, value.replace(/(env_(?:key|value)_)\w+$/, "$1" + i));
        }
      });
      row.querySelector("[data-env-remove]").value = "remove_env_" + i;
    });
    form.elements.env_rows.value = String(all.length);
    form.querySelector("[data-env-add]").hidden = all.length >= maxRows;
    form.querySelector("[data-env-full]").hidden = all.length < maxRows;
  }

  function addRow(key, value) {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.querySelector("[name^=env_key_]").value = key;
    row.querySelector("[name^=env_value_]").value = value;
    rows.appendChild(row);
    renumber();
    return row;
  }

  function applyTemplate(id) {
    const preset = presets[id];
    if (!preset) return;
    for (const [name, value] of Object.entries(preset)) {
      if (name !== "env") form.elements[name].value = value;
    }
    rows.replaceChildren();
    const env = preset.env.length ? preset.env : [{ key: "", value: "" }];
    env.slice(0, maxRows).forEach((row) => addRow(row.key, row.value));
    // The server applies a template only when this differs: it must not undo edits made since.
    form.elements.applied_template.value = id;
  }

  // Copies the errors of the last answer (deploy_live.html) next to their fields.
  function showErrors() {
    const live = document.getElementById("wizard-live-errors");
    form.querySelectorAll("[data-errors-for]").forEach((box) => {
      if (live.contains(box)) return;
      const name = box.dataset.errorsFor;
      const found = live.querySelector('[data-errors-for="' + CSS.escape(name) + '"]');
      box.replaceChildren(...(found ? found.cloneNode(true).childNodes : []));
      const input = form.elements[name];
      if (input && input.classList) input.classList.toggle("is-invalid", Boolean(found));
    });
  }

  function showFirstError() {
    const first = form.querySelector("#wizard-nonfield .alert, [data-errors-for]:not(:empty)");
    if (first) first.scrollIntoView({ block: "center" });
  }

  function isDeploy(event) {
    return event && event.type === "submit" && event.submitter && event.submitter.value === "deploy";
  }

  form.addEventListener("change", (event) => {
    if (event.target.name === "template") applyTemplate(event.target.value);
    toggleSections();
    refresh();
  });
  form.addEventListener("input", (event) => {
    if (isTyped(event.target)) refreshAfterTyping();
  });
  // Enter in a field refreshes the review; only the Deploy button deploys.
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && isTyped(event.target) && event.target.tagName !== "TEXTAREA") {
      event.preventDefault();
      refresh();
    }
  });
  form.addEventListener("click", (event) => {
    const add = event.target.closest("[data-env-add]");
    const remove = event.target.closest("[data-env-remove]");
    if (!add && !remove) return;
    event.preventDefault();
    if (add) {
      addRow("", "").querySelector("input").focus();
    } else {
      remove.closest("[data-env-row]").remove();
      renumber();
    }
    refresh();
  });
  // hx-sync "queue last": a change while a request is in flight queues one more (the latest
  // answers win, and nothing is aborted). Once a Deploy is under way every other request is
  // dropped here, so the Deploy is never pushed out of the queue and gets its answer.
  form.addEventListener("htmx:confirm", (event) => {
    const trigger = event.detail.triggeringEvent;
    if (deploying) {
      // A queued request is confirmed again when it leaves the queue: the Deploy passes.
      if (trigger !== deploying) event.preventDefault();
      return;
    }
    if (isDeploy(trigger)) {
      deploying = trigger;
      clearTimeout(pending);
    }
    if (inFlight) stale = true;
  });
  form.addEventListener("htmx:beforeRequest", () => {
    inFlight = true;
    stale = false;
  });
  // The answer to answers already changed again: the queued request brings the current one.
  form.addEventListener("htmx:beforeSwap", (event) => {
    if (stale) event.detail.shouldSwap = false;
  });
  form.addEventListener("htmx:afterRequest", (event) => {
    inFlight = false;
    const deployed = isDeploy(event.detail.requestConfig && event.detail.requestConfig.triggeringEvent);
    if (deployed) deploying = null;
    if (!event.detail.successful) return;
    showErrors();
    if (deployed) showFirstError();
  });
  toggleSections();
})();
