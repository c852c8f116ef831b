// Live progress on a family's page: poll the versions' counts every second and move the bars.
function reembedProgress(family) {
  async function tick() {
    try {
      const answer = await fetch(`/ui/families/${encodeURIComponent(family)}/progress`, { credentials: "same-origin" });
      if (answer.ok) {
        for (const v of await answer.json()) {
          const row = document.querySelector(`tr[data-version="${CSS.escape(v.version)}"]`);
          if (!row) { continue; }
          row.querySelector(".bar > div").style.width = `${v.percent.toFixed(1)}%`;
          row.querySelector(".progress").textContent = `${v.settled}/${v.planned}`;
          row.querySelector(".status").firstChild.textContent = v.run ? `${v.status} (${v.run})` : v.status;
          const rate = v.rate ? `${v.rate.toFixed(0)} chunks/s` : "";
          row.querySelector(".rate").textContent = rate + (v.eta_s ? ` · ${v.eta_s.toFixed(0)} s left` : "");
        }
      }
    } finally {
      setTimeout(tick, 1000);
    }
  }
  setTimeout(tick, 1000);
}
