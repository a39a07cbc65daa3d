//! JSON Schemas of process inputs and outputs, derived from the QGIS parameter types the node
//! describes.
