// Calls to the shoematch API with the signed-in examiner's bearer token; errors carry the
// server's message (it names the bad input) so the page can show it as is.

const TOKEN_KEY = "shoematch.token";

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const h = { ...extra };
  if (token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error) message = body.error;
    else if (body.detail) {
      message = Array.isArray(body.detail)
        ? body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
        : String(body.detail);
    }
  } catch (_) { /* not JSON: keep the status line */ }
  const error = new Error(message);
  error.status = response.status;
  return error;
}

export async function request(method, path, { json, form } = {}) {
  const init = { method, headers: headers() };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJSON(path) { return (await request("GET", path)).json(); }
export async function postJSON(path, json) { return (await request("POST", path, { json })).json(); }
export async function putJSON(path, json) { return (await request("PUT", path, { json })).json(); }
export async function postForm(path, form) { return (await request("POST", path, { form })).json(); }
export async function blob(method, path, form) { return (await request(method, path, { form })).blob(); }

// Object URLs of authenticated images, kept per path so a page of thumbnails loads once.
const imageUrls = new Map();
export async function imageUrl(path) {
  if (!imageUrls.has(path)) {
    imageUrls.set(path, blob("GET", path).then((b) => URL.createObjectURL(b)));
  }
  try {
    return await imageUrls.get(path);
  } catch (error) {
    imageUrls.delete(path);
    throw error;
  }
}

export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the browser could not show this image"));
    image.src = url;
  });
}
