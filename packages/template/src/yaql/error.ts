/** A yaql parse or evaluation failure; the message is yaql's wording where Heat shows it. */
export class YaqlError extends Error {}
