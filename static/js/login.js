// The sign-in form remembers which admin page address to return to (the URL's hash).

const next = document.getElementById("next");
if (next && !next.value && window.location.hash.startsWith("#/")) {
  next.value = window.location.hash;
}
