import { z } from "zod";

/**
 * A whole-number setting given as a string var (wrangler passes every var as text): at most nine digits, within
 * [min, max], `fallback` when unset. Shared by edge/env.ts and edge/alert-settings.ts.
 */
export const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().min(min).max(max))
    .optional()
    .transform((v) => v ?? fallback);
