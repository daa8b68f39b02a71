// The result grid (paged, 20 a page, up to the top 100), the side-by-side / overlay / heat-map
// comparison of one candidate, and the examiner's decision on it. Keyboard: Tab through the
// cards, Enter opens one; in the comparison ← / → move, 1 / 2 / 3 mark.

import { imageUrl, loadImage, putJSON } from "./api.js";
import { inkDark, recolour } from "./pixels.js";

const PAGE = 20;
const $ = (id) => document.getElementById(id);
const slug = (text) => text.replace(/\s+/g, "-");
// how far above this query's own score distribution over the gallery (standard deviations)
const zText = (z) => (typeof z === "number" ? ` · z ${z.toFixed(1)}` : "");

// A probability only when the index version's calibrator passed its quality gate; otherwise
// the server's reason, never a number.
function confidenceText(confidence) {
  if (!confidence) return "";
  if (typeof confidence.p_top10 !== "number") {
    return confidence.confidence_reason ? ` · uncalibrated: ${confidence.confidence_reason}` : "";
  }
  const p = confidence.p_top10.toFixed(2);
  return confidence.confident
    ? ` · P(true model in top 10) ${p}`
    : ` · no confident match (P(true model in top 10) ${p})`;
}

export class Results {
  constructor({ onError, onDecided }) {
    this.onError = onError;
    this.onDecided = onDecided;
    this.queryPrint = null;
    this.rows = [];
    this.page = 0;
    this.selected = -1;
    this.caseId = null;
    this.queryId = null;
    this.decisions = {};
    $("prev-page").addEventListener("click", () => this.showPage(this.page - 1));
    $("next-page").addEventListener("click", () => this.showPage(this.page + 1));
    $("opacity").addEventListener("input", () => this.opacity());
    $("save-decision").addEventListener("click", () => this.save());
    $("compare-panel").addEventListener("keydown", (e) => this.keys(e));
  }

  // confidence: {p_top10, confident, confidence_reason} of the answer (null p_top10: the
  // index version is not calibrated, and confidence_reason says why)
  set(caseId, queryId, rows, decisions = {}, confidence = null) {
    this.caseId = caseId;
    this.queryId = queryId;
    this.rows = rows;
    this.decisions = decisions;
    this.selected = -1;
    // the print exactly as this query searched it (placement included), 255 = ink
    this.queryPrint = imageUrl(`/v1/cases/${encodeURIComponent(caseId)}/queries/${queryId}/print.png`)
      .then(loadImage);
    $("result-count").textContent = `${rows.length} models` + confidenceText(confidence);
    $("compare-panel").hidden = true;
    this.showPage(0);
  }

  showPage(page) {
    const pages = Math.max(1, Math.ceil(this.rows.length / PAGE));
    this.page = Math.min(pages - 1, Math.max(0, page));
    $("page-info").textContent = `page ${this.page + 1} of ${pages}`;
    $("prev-page").disabled = this.page === 0;
    $("next-page").disabled = this.page >= pages - 1;
    const list = $("results");
    list.replaceChildren();
    for (const [i, row] of this.rows.slice(this.page * PAGE, (this.page + 1) * PAGE).entries()) {
      list.append(this.card(row, this.page * PAGE + i));
    }
  }

  card(row, index) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "card" + (index === this.selected ? " selected" : "");
    card.setAttribute("role", "listitem");
    card.dataset.index = index;
    card.dataset.modelId = row.model_id;
    const decision = this.decisions[row.model_id];
    const labels = [...row.descriptors, ...Object.entries(row.attributes).map(([k, v]) => `${k}: ${v}`)];
    card.innerHTML = `<span class="head"><span class="rank">#${row.rank}</span>
      <span class="model"></span></span>
      <span class="score">score ${row.score.toFixed(3)}${zText(row.z)}</span>
      <span class="thumbs"><img alt="depth map"><img class="ref-print" alt="print"></span>
      <span class="labels"></span><span class="decision"></span>`;
    card.querySelector(".model").textContent = row.model_id;
    card.querySelector(".labels").textContent = labels.join(" · ") || "no labels";
    if (decision) {
      const badge = document.createElement("span");
      badge.className = `badge ${slug(decision.decision)}`;
      badge.textContent = decision.decision;
      card.querySelector(".decision").append(badge);
    }
    card.setAttribute("aria-label", `rank ${row.rank}, model ${row.model_id}, score ${row.score.toFixed(3)}` +
                      (decision ? `, marked ${decision.decision}` : ""));
    const [depth, print] = card.querySelectorAll("img");
    this.thumb(depth, `/v1/references/${encodeURIComponent(row.instance_id)}/depth.png`);
    this.thumb(print, `/v1/references/${encodeURIComponent(row.instance_id)}/print.png`);
    card.addEventListener("click", () => this.open(index));
    return card;
  }

  async thumb(img, path) {
    try { img.src = await imageUrl(path); } catch (_) { img.alt = "no image"; }
  }

  async open(index) {
    if (index < 0 || index >= this.rows.length) return;
    this.selected = index;
    const row = this.rows[index];
    if (Math.floor(index / PAGE) !== this.page) this.showPage(Math.floor(index / PAGE));
    document.querySelectorAll("#results .card").forEach((c) =>
      c.classList.toggle("selected", Number(c.dataset.index) === index));
    const panel = $("compare-panel");
    panel.hidden = false;
    $("compare-title").textContent = `#${row.rank} ${row.model_id} (instance ${row.instance_id}, score ${row.score.toFixed(3)})`;
    const decision = this.decisions[row.model_id];
    document.querySelectorAll("input[name=decision]").forEach((r) => {
      r.checked = decision ? r.value === decision.decision : false;
    });
    $("note").value = decision ? decision.note : "";
    $("decision-info").textContent = decision ? `marked by ${decision.by}` : "not marked";
    try {
      const ref = `/v1/references/${encodeURIComponent(row.instance_id)}`;
      const [refUrl, depthUrl, heatUrl] = await Promise.all([
        imageUrl(`${ref}/print.png`), imageUrl(`${ref}/depth.png`),
        imageUrl(`/v1/cases/${encodeURIComponent(this.caseId)}/queries/${this.queryId}/heatmap/${encodeURIComponent(row.model_id)}.png`)]);
      $("cmp-ref").src = refUrl;
      $("cmp-depth").src = depthUrl;
      $("heatmap").src = heatUrl;
      await this.drawReference(refUrl);
      this.drawQuery(await this.queryPrint);
    } catch (error) {
      this.onError(error.message);
    }
    $("compare-panel").focus();
  }

  // Reference print shown dark on light (255 = ink in the data), under the query.
  async drawReference(url) {
    const canvas = document.createElement("canvas");
    recolour(canvas, await loadImage(url), inkDark);
    $("ov-ref").src = canvas.toDataURL();
  }

  // The query as searched: dark ink in the side-by-side, red ink (clear ground) in the overlay.
  drawQuery(print) {
    recolour($("cmp-query"), print, inkDark);
    recolour($("ov-query"), print, (v) => [220, 30, 30, v]);
    this.opacity();
  }

  opacity() { $("ov-query").style.opacity = String(Number($("opacity").value) / 100); }

  keys(e) {
    if (e.target.tagName === "TEXTAREA" || e.target.tagName === "INPUT" && e.target.type === "range") return;
    if (e.key === "ArrowRight") { e.preventDefault(); this.open(this.selected + 1); }
    else if (e.key === "ArrowLeft") { e.preventDefault(); this.open(this.selected - 1); }
    else if (["1", "2", "3"].includes(e.key)) {
      const radios = document.querySelectorAll("input[name=decision]");
      radios[Number(e.key) - 1].checked = true;
      radios[Number(e.key) - 1].focus();
    }
  }

  async save() {
    const row = this.rows[this.selected];
    const choice = document.querySelector("input[name=decision]:checked");
    if (!row) return;
    if (!choice) { this.onError("choose possible match, excluded or inconclusive first"); return; }
    try {
      const path = `/v1/cases/${encodeURIComponent(this.caseId)}/queries/${this.queryId}/decisions/${encodeURIComponent(row.model_id)}`;
      const saved = await putJSON(path, { decision: choice.value, note: $("note").value });
      this.decisions[row.model_id] = saved;
      $("decision-info").textContent = `saved: ${saved.decision} (by ${saved.by})`;
      const card = document.querySelector(`#results .card[data-index="${this.selected}"]`);
      if (card) card.replaceWith(this.card(row, this.selected));
      this.onDecided();
    } catch (error) {
      this.onError(error.message);
    }
  }
}
