//! `icd convert`: a hub checkpoint's pytorch_model.bin to model.safetensors.

use std::path::Path;

use insecure_code_detector::{convert_pytorch_to_safetensors, StorageDtype};

use crate::flags::{ConvertArgs, ConvertDtype};
use crate::Failure;

pub fn run(args: &ConvertArgs) -> Result<(), Failure> {
    let input = if args.input.is_dir() {
        args.input.join("pytorch_model.bin")
    } else {
        args.input.clone()
    };
    let output = args.output.clone().unwrap_or_else(|| {
        input
            .parent()
            .unwrap_or(Path::new("."))
            .join("model.safetensors")
    });
    let dtype = match args.dtype {
        ConvertDtype::F32 => StorageDtype::F32,
        ConvertDtype::F16 => StorageDtype::F16,
    };
    convert_pytorch_to_safetensors(&input, &output, dtype)?;
    eprintln!("icd: wrote {}", output.display());
    Ok(())
}
