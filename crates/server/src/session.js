// Signed in with an account (no key): the session cookie goes along by itself;
// a request that changes something carries the session's CSRF token.
let csrf = "";
try { csrf = sessionStorage.getItem("waihu.csrf") || ""; } catch (e) {}
async function csrfToken() {
  if (csrf) return csrf;
  const r = await fetch("/api/auth/me");
  if (r.status === 401) { toLogin(); return ""; }
  if (r.ok) { const j = await r.json(); csrf = j.csrf_token || ""; try { sessionStorage.setItem("waihu.csrf", csrf); } catch (e) {} }
  return csrf;
}
function toLogin() { location.href = "/login?expired=1&next=" + encodeURIComponent(location.pathname + location.search + location.hash); }
async function withCsrf(headers) { if (!key) headers["X-CSRF-Token"] = await csrfToken(); return headers; }
// Signed in with an account: a sign-out button (it ends the session and returns to /login).
async function showSignOut() {
  if (key) return;
  const r = await fetch("/api/auth/me");
  if (!r.ok) return;
  const me = await r.json();
  if (!me.user) return;
  const b = document.getElementById("logout");
  b.hidden = false;
  b.onclick = async () => {
    await fetch("/api/auth/logout", { method: "POST", headers: { "X-CSRF-Token": await csrfToken() } });
    try { sessionStorage.removeItem("waihu.csrf"); } catch (e) {}
    location.href = "/login";
  };
}
showSignOut();
function checkSession(r) { if (r.status === 401 && !key) toLogin(); return r; }
