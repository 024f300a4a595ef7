"use strict";
// The search page: a query box, ranked hits with the best passage highlighted, the document on click.

const form = document.getElementById("search-form");
const queryBox = document.getElementById("query");
const modeBox = document.getElementById("mode");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");
const documentPanel = document.getElementById("document");

// The snippet with <mark> around each highlighted span; spans count code points, as the server does.
function highlighted(text, spans) {
  const characters = Array.from(text);
  const fragment = document.createDocumentFragment();
  let position = 0;
  for (const [start, end] of spans) {
    fragment.append(characters.slice(position, start).join(""));
    fragment.append(element("mark", "", characters.slice(start, end).join("")));
    position = end;
  }
  fragment.append(characters.slice(position).join(""));
  return fragment;
}

function scoreLine(hit, reranked) {
  const parts = [`retrieval ${hit.retrieval_score.toFixed(4)}`];
  if (hit.rerank_score !== null && hit.rerank_score !== undefined) parts.push(`rerank ${hit.rerank_score.toFixed(3)}`);
  else if (reranked) parts.push("rerank –");
  return parts.join(" · ");
}

function showHits(response) {
  results.replaceChildren();
  const total = response.timings_ms.total !== undefined ? ` in ${response.timings_ms.total.toFixed(0)} ms` : "";
  statusLine.textContent = response.hits.length
    ? `${response.hits.length} results (${response.mode}${response.reranked ? ", reranked" : ""})${total}`
    : "No results.";
  for (const hit of response.hits) {
    const item = element("li", "hit");
    item.dataset.docId = hit.doc_id;
    const title = element("a", "hit-title", hit.title || hit.doc_id);
    title.href = "#" + encodeURIComponent(hit.doc_id);
    title.addEventListener("click", (event) => { event.preventDefault(); openDocument(hit.doc_id); });
    const snippet = element("p", "snippet");
    snippet.append(highlighted(hit.snippet, hit.highlights));
    item.append(title, element("p", "scores", scoreLine(hit, response.reranked)), snippet,
                element("p", "source", hit.source || hit.doc_id));
    results.append(item);
  }
}

async function search() {
  const query = queryBox.value.trim();
  if (!query) return;
  statusLine.textContent = "Searching…";
  documentPanel.hidden = true;
  history.replaceState(null, "", "?q=" + encodeURIComponent(query) + "&mode=" + modeBox.value);
  try {
    showHits(await api("/api/search", {
      method: "POST",
      body: JSON.stringify({ query, k: 10, mode: modeBox.value }),
    }));
  } catch (error) {
    results.replaceChildren();
    statusLine.textContent = "Error: " + error.message;
    if (error.status === 401) askForKey(search);
  }
}

async function openDocument(docId) {
  try {
    const doc = await api("/api/documents/" + encodeURIComponent(docId));
    document.getElementById("document-title").textContent = doc.title || doc.doc_id;
    const meta = [doc.doc_id, doc.source, ...Object.entries(doc.metadata).map(([k, v]) => `${k}: ${v}`)];
    document.getElementById("document-meta").textContent = meta.filter(Boolean).join(" · ");
    const text = document.getElementById("document-text");
    text.replaceChildren(...doc.text.split(/\n{2,}/).map((paragraph) => element("p", "", paragraph)));
    documentPanel.hidden = false;
    documentPanel.scrollIntoView({ block: "nearest" });
  } catch (error) {
    statusLine.textContent = "Error: " + error.message;
    if (error.status === 401) askForKey(() => openDocument(docId));
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
document.getElementById("document-close").addEventListener("click", () => { documentPanel.hidden = true; });

const initial = new URLSearchParams(location.search);
if (initial.get("mode")) modeBox.value = initial.get("mode");
if (initial.get("q")) { queryBox.value = initial.get("q"); search(); }
