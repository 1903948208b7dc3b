"use strict";
(() => {
  const every = 5000;
  const dash = document.getElementById("dash");
  const updated = document.getElementById("updated");
  const stale = document.getElementById("stale");
  let last = updated.textContent.replace(/^Updated /, "");
  async function refresh() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), every - 1000);
    try {
      const res = await fetch("?format=fragment", {headers: {Accept: "text/html"}, cache: "no-store", signal: abort.signal});
      if (!res.ok) throw new Error("HTTP " + res.status);
      const t = document.createElement("template");
      t.innerHTML = await res.text();
      const head = t.content.querySelector("[data-updated]");
      if (!head) throw new Error("unexpected response");
      last = head.dataset.updated;
      dash.replaceChildren(t.content);
      updated.textContent = "Updated " + last;
      stale.hidden = true;
      document.body.classList.remove("is-stale");
    } catch (err) {
      const why = err.name === "AbortError" ? "timed out" : err.message;
      stale.textContent = "Stale: refresh failed (" + why + "); showing data from " + last + ".";
      stale.hidden = false;
      document.body.classList.add("is-stale");
    } finally {
      clearTimeout(timer);
      setTimeout(refresh, every);
    }
  }
  setTimeout(refresh, every);
})();
