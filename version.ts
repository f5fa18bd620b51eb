/** The version of pg-rdma. */
export const VERSION = "0.1.0";
