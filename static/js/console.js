// Copy buttons: <button data-copy="#target-id"> or data-copy-text="...".
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy], [data-copy-text]");
  if (!button) return;
  const target = button.dataset.copy ? document.querySelector(button.dataset.copy) : null;
  const text = button.dataset.copyText || (target && (target.value || target.textContent)) || "";
  navigator.clipboard.writeText(text.trim()).then(() => {
    const original = button.innerHTML;
    button.innerHTML = '<i class="bi bi-check2"></i> Copied';
    setTimeout(() => { button.innerHTML = original; }, 1500);
  });
});
// Confirm destructive actions: <form data-confirm="Terminate this pod?">.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
