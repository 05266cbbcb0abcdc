// Which rows are on (or near) the screen, so a long list fetches figures and ticks countdowns only for the rows a
// person can see. One IntersectionObserver serves every row; without one (old browsers, jsdom) every row counts as
// on screen, which is the page's behaviour before this existed.
import { useEffect, useState, type RefObject } from "react";

/** Rows this far below the fold count as on screen, so their figures are there when scrolled to. */
const MARGIN = "200px";
/**
 * A row counts as seen (its figures are fetched) after this long on screen, so scrolling fast past hundreds of rows
 * (or jumping to "Show more") does not fetch them all; a quarter second is below what a reader notices.
 */
export const SEEN_AFTER_MS = 250;

type Callback = (visible: boolean) => void;
const callbacks = new Map<Element, Callback>();
let observer: IntersectionObserver | null = null;

function shared(): IntersectionObserver {
  observer ??= new IntersectionObserver(
    (entries) => entries.forEach((entry) => callbacks.get(entry.target)?.(entry.isIntersecting)),
    { rootMargin: MARGIN },
  );
  return observer;
}

/** `visible`: on screen now; `seen`: has been on screen SEEN_AFTER_MS (figures, once fetched, stay). */
export function useOnScreen(ref: RefObject<Element | null>): { visible: boolean; seen: boolean } {
  const supported = typeof IntersectionObserver !== "undefined";
  const [visible, setVisible] = useState(!supported);
  const [seen, setSeen] = useState(!supported);

  useEffect(() => {
    const element = ref.current;
    if (!supported || !element) return;
    callbacks.set(element, setVisible);
    const watcher = shared();
    watcher.observe(element);
    return () => {
      watcher.unobserve(element);
      callbacks.delete(element);
    };
  }, [ref, supported]);

  useEffect(() => {
    if (!visible || seen) return;
    const timer = setTimeout(() => setSeen(true), SEEN_AFTER_MS);
    return () => clearTimeout(timer);
  }, [visible, seen]);

  return { visible, seen };
}

/** Tests replace the browser's observer; this forgets the shared one made with the old. */
export function resetOnScreenForTests() {
  observer?.disconnect();
  observer = null;
  callbacks.clear();
}
