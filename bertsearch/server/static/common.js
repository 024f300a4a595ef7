"use strict";
// Shared by the pages: calling the API (with the API key, if the server asks for one) and building elements.

const KEY_STORAGE = "bertsearch-api-key";

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers["Authorization"] = "Bearer " + key;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    const error = new Error(body.error || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

// Ask for the key once the server says one is needed; the page retries with it.
function askForKey(onSaved) {
  const box = document.getElementById("key-box");
  box.hidden = false;
  document.getElementById("key-save").onclick = () => {
    sessionStorage.setItem(KEY_STORAGE, document.getElementById("api-key").value);
    box.hidden = true;
    onSaved();
  };
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
