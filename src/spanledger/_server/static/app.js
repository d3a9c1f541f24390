// spanledger dashboard: progressive enhancement only; every view works without JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Changing the tenant filter applies it at once.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  // Filter forms leave empty fields out of the URL, so shared links stay short.
  for (const form of document.querySelectorAll("form[method=get]")) {
    form.addEventListener("submit", () => {
      for (const input of form.querySelectorAll("input, select")) {
        if (input.name && input.value === "") input.disabled = true;
      }
    });
  }
  // Rows of the calls table open the call's record.
  for (const row of document.querySelectorAll("table.clickable tbody tr")) {
    const link = row.querySelector("a.call-link");
    if (!link) continue;
    row.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      window.location.href = link.href;
    });
  }
  // Close the custom range popover with Escape.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const d of document.querySelectorAll("details.custom[open]")) d.removeAttribute("open");
  });
});
