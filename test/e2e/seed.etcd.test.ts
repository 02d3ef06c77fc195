/**
 * The seed's scenario end to end on a real etcd (in a namespace of its own on the underlay), two
 * nodes, two overlayd agents, pods through the CNI plugin.
 */
import { seedScenario } from "./scenario.js";

seedScenario("etcd", "test/e2e/seed.etcd.test.ts");
