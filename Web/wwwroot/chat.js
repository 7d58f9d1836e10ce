// Browser-side helpers of the chat page (imported as a module by ChatInterop).

export function attachComposer(textarea) {
  if (!textarea || textarea.dataset.chatComposer) return;
  textarea.dataset.chatComposer = "1";
  textarea.addEventListener("keydown", event => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing
        && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      textarea.form?.requestSubmit();
    }
  });
}

export function followTranscript(scroller) {
  if (!scroller || scroller.dataset.chatFollow) return;
  scroller.dataset.chatFollow = "1";
  let stick = true;
  scroller.addEventListener("scroll", () => {
    stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 64;
  }, { passive: true });
  new MutationObserver(() => {
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  }).observe(scroller, { childList: true, subtree: true, characterData: true });
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API refused (permissions, non-secure origin): fall back to a hidden selection.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }
}
