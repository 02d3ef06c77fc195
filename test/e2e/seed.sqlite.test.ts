/**
 * The seed's scenario end to end on the embedded store: both agents on one machine sharing one
 * SQLite file (`--store sqlite:<tmp>/store.db`).
 */
import { seedScenario } from "./scenario.js";

seedScenario("sqlite", "test/e2e/seed.sqlite.test.ts");
